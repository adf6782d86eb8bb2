package notifications

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strconv"
	"strings"
	texttemplate "text/template"

	"github.com/microshop/microshop/services/orders/ordersapi"
)

// The templates are files in the binary: for each message a text one,
// which also defines its "subject", and an HTML one inside layout.html.
//
//go:embed templates/*.txt templates/*.html
var templateFiles embed.FS

// Messages, by template name.
const (
	msgWelcome  = "welcome"
	msgReceipt  = "receipt"
	msgRejected = "rejected"
	msgRefund   = "refund"
	msgLowStock = "low_stock"
)

// messages renders the emails.
type messages struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

// loadMessages parses every template once, at start, so a broken one
// stops the service instead of an email.
func loadMessages() (*messages, error) {
	m := &messages{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	funcs := map[string]any{"money": formatMoney}
	for _, name := range []string{msgWelcome, msgReceipt, msgRejected, msgRefund, msgLowStock} {
		t, err := texttemplate.New(name+".txt").Funcs(funcs).ParseFS(templateFiles, "templates/"+name+".txt", "templates/footer.txt")
		if err != nil {
			return nil, fmt.Errorf("parsing the %s text template: %w", name, err)
		}
		if t.Lookup("subject") == nil {
			return nil, fmt.Errorf("the %s text template defines no subject", name)
		}
		h, err := htmltemplate.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parsing the %s HTML template: %w", name, err)
		}
		m.text[name], m.html[name] = t, h
	}
	return m, nil
}

// rendered is an email's subject and bodies.
type rendered struct{ Subject, Text, HTML string }

func (m *messages) render(name string, data any) (rendered, error) {
	var subject, text, html bytes.Buffer
	t := m.text[name]
	if err := t.ExecuteTemplate(&subject, "subject", data); err != nil {
		return rendered{}, fmt.Errorf("rendering the %s subject: %w", name, err)
	}
	if err := t.Execute(&text, data); err != nil {
		return rendered{}, fmt.Errorf("rendering the %s text: %w", name, err)
	}
	if err := m.html[name].Execute(&html, data); err != nil {
		return rendered{}, fmt.Errorf("rendering the %s HTML: %w", name, err)
	}
	return rendered{Subject: oneLine(strings.TrimSpace(subject.String())), Text: text.String(), HTML: html.String()}, nil
}

// Template data. Each message gets only what it shows.
type (
	welcomeData struct {
		Name, Email string
	}
	orderData struct {
		OrderID  string
		Lines    []lineData
		Total    string
		Refunded string
		// Reason is the rejection's code, Why its sentence.
		Reason, Why string
	}
	lineData struct {
		SKU      string
		Quantity int64
		Price    string // unit price
		Amount   string // price × quantity
	}
	lowStockData struct {
		SKU, Name            string
		Available, Threshold int64
	}
)

func orderLines(lines []ordersapi.Line, currency string) []lineData {
	out := make([]lineData, 0, len(lines))
	for _, l := range lines {
		out = append(out, lineData{SKU: l.SKU, Quantity: l.Quantity,
			Price: formatMoney(l.PriceCents, currency), Amount: formatMoney(l.PriceCents*l.Quantity, currency)})
	}
	return out
}

// rejectionReason is one sentence for each reason orders gives.
func rejectionReason(reason string) string {
	switch reason {
	case ordersapi.ReasonOutOfStock:
		return "Some of the products you ordered are out of stock, so we could not reserve them."
	case ordersapi.ReasonPaymentDeclined:
		return "Your card was declined, so nothing was charged. Please check the card details or use another card."
	case ordersapi.ReasonPaymentUnavailable:
		return "Our payment service did not answer in time, so we stopped before charging your card. Please try again in a few minutes."
	case ordersapi.ReasonInventoryUnavailable:
		return "Our stock service did not answer in time, so we could not reserve your products. Please try again in a few minutes."
	case ordersapi.ReasonReservationExpired:
		return "Your checkout took too long and the products we held for you were released. Nothing was charged."
	case ordersapi.ReasonInterrupted:
		return "Our checkout was interrupted before your card was charged, and we never keep card numbers, so we could not finish it. Nothing was charged."
	default:
		return "We could not complete your order, and nothing was charged."
	}
}

// zeroDecimal reports whether an ISO 4217 currency has no minor units.
func zeroDecimal(currency string) bool {
	switch currency {
	case "JPY", "KRW", "VND", "CLP", "ISK", "UGX":
		return true
	}
	return false
}

// symbol is the sign written before amounts of currency, or "".
func symbol(currency string) string {
	switch currency {
	case "USD":
		return "$"
	case "EUR":
		return "€"
	case "GBP":
		return "£"
	case "JPY":
		return "¥"
	}
	return ""
}

// formatMoney writes an amount in minor units for people: 123456 USD is
// "$1,234.56"; a currency without a symbol here is "1,234.56 CHF".
func formatMoney(cents int64, currency string) string {
	currency = strings.ToUpper(currency)
	neg := cents < 0
	if neg {
		cents = -cents
	}
	var s string
	if zeroDecimal(currency) {
		s = groupThousands(strconv.FormatInt(cents, 10))
	} else {
		s = groupThousands(strconv.FormatInt(cents/100, 10)) + fmt.Sprintf(".%02d", cents%100)
	}
	if sym := symbol(currency); sym != "" {
		s = sym + s
	} else if currency != "" {
		s += " " + currency
	}
	if neg {
		s = "-" + s
	}
	return s
}

func groupThousands(digits string) string {
	var b strings.Builder
	for i, r := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
