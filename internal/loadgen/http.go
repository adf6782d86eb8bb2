package loadgen

import (
	"context"
	"errors"
	"net"
	"strconv"

	"github.com/microshop/microshop/internal/shopclient"
)

// kindOf names how a call of the API went: "" for a success, the status
// of an unexpected answer, a bad answer, or the failure to get one.
func kindOf(ctx context.Context, err error) string {
	if err == nil {
		return ""
	}
	if status := shopclient.StatusOf(err); status != 0 {
		return statusKind(status)
	}
	if errors.Is(err, shopclient.ErrBadResponse) {
		return KindBadResponse
	}
	return classify(ctx, err)
}

// classify names the kind of a failure to get an answer.
func classify(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return KindCancelled
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return KindTimeout
	}
	return KindConnection
}

// statusKind is the kind of an answer with an unexpected status.
func statusKind(code int) string { return "status_" + strconv.Itoa(code) }

// outcomeKind is the kind of a checkout that ended other than it should.
func outcomeKind(status, reason string) string {
	if reason == "" {
		return "wrong_outcome:" + status
	}
	return "wrong_outcome:" + status + "/" + reason
}
