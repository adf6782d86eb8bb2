package validation_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/microshop/microshop/internal/platform/validation"
)

func TestErrors(t *testing.T) {
	err := fmt.Errorf("placing the order: %w", validation.Errors{
		{Field: "card.number", Reason: "is not a card number"},
		{Field: "lines", Reason: "must hold between 1 and 100 lines"},
	})
	var invalid validation.Errors
	if !errors.As(err, &invalid) || len(invalid) != 2 || invalid[1].Field != "lines" {
		t.Fatalf("errors.As found %+v in %v", invalid, err)
	}
	want := "placing the order: invalid request: card.number is not a card number; lines must hold between 1 and 100 lines"
	if err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
}
