package client

import (
	"errors"
	"strings"

	"github.com/microshop/microshop/internal/platform/problem"
)

// Error is a refusal a target answered: its problem document and, when it
// is one the caller can act on, the contract's sentinel it matches.
type Error struct {
	Target  string
	Kind    error
	Problem *problem.Problem
}

func (e *Error) Error() string { return e.Target + ": " + e.Problem.Error() }

// Unwrap lets errors.Is find the sentinel and problem.From the problem.
func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Problem}
	}
	return []error{e.Kind, e.Problem}
}

// Classify turns a problem that target answered into an *Error whose Kind
// is what kind says of its status and type slug (the last segment of its
// type, such as "not-cancellable"), or nil for none. Other errors, such as
// ErrUnavailable, pass unchanged. Contract clients use it to give their
// callers sentinels instead of problem documents.
func Classify(target string, err error, kind func(status int, slug string) error) error {
	p := problem.From(err)
	if p == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	return &Error{Target: target, Kind: kind(p.Status, p.Type[strings.LastIndex(p.Type, "/")+1:]), Problem: p}
}
