package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"

	"github.com/microshop/microshop/internal/shopclient"
)

// KindOf names how an operation of a measured load went, in the terms of
// its figures (ErrorsByKind): "" for a success, status_NNN for an
// unexpected answer, a bad answer, a timeout, or "connection" for any
// other failure to get an answer. It is attemptKind's judgement, coarser;
// an operation whose own deadline passed timed out, whatever the
// transport said.
func KindOf(ctx context.Context, err error) string {
	if err == nil {
		return ""
	}
	if status := shopclient.StatusOf(err); status != 0 {
		return statusKind(status)
	}
	kind := attemptKind(err)
	if kind != AttemptBadAnswer && ctx.Err() != nil {
		kind = attemptKind(ctx.Err())
	}
	switch kind {
	case AttemptBadAnswer:
		return KindBadResponse
	case AttemptTimeout, AttemptCancelled:
		return kind
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

// The kinds of a failed attempt of a custom load's call (Worker.Call),
// besides "http NNN" for a 5xx.
const (
	AttemptRefused   = "refused" // the connection was refused: the request never left
	AttemptReset     = "reset"
	AttemptClosed    = "closed mid-answer"
	AttemptTimeout   = "timeout"
	AttemptCancelled = "cancelled"
	AttemptBadAnswer = "bad answer" // a wanted status with a body the API does not promise
	AttemptOther     = "other"
)

// attemptKind names how an attempt failed. It is the one judgement of
// failures in this package: whether the request may have reached the
// system matters to a retry, and KindOf coarsens it for the figures.
func attemptKind(err error) string {
	if status := shopclient.StatusOf(err); status != 0 {
		return "http " + strconv.Itoa(status)
	}
	var op *net.OpError
	switch {
	case errors.Is(err, shopclient.ErrBadResponse):
		return AttemptBadAnswer
	case errors.Is(err, syscall.ECONNREFUSED):
		return AttemptRefused
	case errors.Is(err, syscall.ECONNRESET):
		return AttemptReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return AttemptClosed
	case errors.Is(err, context.Canceled):
		return AttemptCancelled
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return AttemptTimeout
	}
	if errors.As(err, &op) && op.Op == "dial" {
		return AttemptRefused
	}
	return AttemptOther
}
