package orders

import (
	"bytes"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/platform/httpjson"
)

// TestShippingAddressRefusesControlCharacters: a NUL or an escape in any
// line of the address is a 422 naming that line, before PostgreSQL (which
// refuses NUL in text) ever sees it.
func TestShippingAddressRefusesControlCharacters(t *testing.T) {
	for _, field := range []string{"name", "street", "city", "postal_code"} {
		for _, bad := range []string{`\u0000`, `\u001b[2J`, `\n`} {
			body := bytes.Replace(orderJSON, []byte(`"`+field+`":"`), []byte(`"`+field+`":"x`+bad), 1)
			var p PlaceOrder
			if prob := httpjson.DecodeBytes(bytes.NewReader(body), &p); prob != nil {
				t.Fatal(prob)
			}
			errs := p.Valid()
			if len(errs) != 1 || errs[0].Field != "shipping_address."+field || !strings.Contains(errs[0].Reason, "control") {
				t.Errorf("%s with %s: %+v", field, bad, errs)
			}
		}
	}
}
