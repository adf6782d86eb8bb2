//go:build !linux

package database

import (
	"syscall"
	"time"
)

// userTimeout does nothing where TCP_USER_TIMEOUT is not available; TCP
// keep-alive still finds a dead idle connection.
func userTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
