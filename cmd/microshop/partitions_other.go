//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
)

func runPartitions(context.Context, partitionsRun, io.Writer) error {
	return errors.New("--partitions needs Linux: it builds its hosts from network namespaces")
}
