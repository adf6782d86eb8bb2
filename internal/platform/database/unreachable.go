package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unreachable reports whether err says that the database could not be
// reached or did not answer in time, rather than that it refused the
// work: a connection that could not be opened, one that broke or timed
// out (a partition, a server that stopped answering), a statement that
// hit its deadline, or Postgres refusing for its own state (shutting
// down, out of connections). Such a failure is nobody's mistake and
// passes: a request that met it is answered 503 with Retry-After, not
// 500.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var (
		connect *pgconn.ConnectError
		pg      *pgconn.PgError
		netErr  net.Error
	)
	switch {
	case errors.As(err, &connect), pgconn.Timeout(err),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, driver.ErrBadConn),
		errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &netErr):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &pg):
		// 08: connection exceptions; 57014: a statement cancelled by
		// statement_timeout; 57P01-57P03: the server shutting down or
		// not yet up; 53300: too many connections; 55P03: a lock not
		// had within lock_timeout.
		return strings.HasPrefix(pg.Code, "08") || pg.Code == "57014" ||
			pg.Code == "57P01" || pg.Code == "57P02" || pg.Code == "57P03" ||
			pg.Code == "53300" || pg.Code == "55P03"
	}
	return false
}
