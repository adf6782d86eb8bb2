package asyncapi_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/microshop/microshop/internal/asyncapi"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/internal/topology"
)

var update = flag.Bool("update", false, "write services/gateway/asyncapi.yaml from the contract types")

// committed is the document the gateway serves.
var committed = filepath.Join("..", "..", "services", "gateway", "asyncapi.yaml")

// The served document is the one the contract types and the Specs make:
// an event type that gains, loses or changes a field, a new event or
// version, a service that starts or stops publishing or consuming one,
// each makes this test fail until the document is made again.
func TestDocumentIsCurrent(t *testing.T) {
	fresh, err := asyncapi.Document(topology.Services())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(committed, fresh, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, fresh) {
		t.Errorf("%s is not what the contract types and the services' Specs make; run\n\tgo test ./internal/asyncapi -update\nand commit it", committed)
	}
}

// document is the part of an AsyncAPI 3.0 document the checks below read.
type document struct {
	AsyncAPI   string `json:"asyncapi"`
	Channels   map[string]struct{ Address string }
	Operations map[string]struct {
		Action  string
		Channel struct {
			Ref string `json:"$ref"`
		}
	}
	Components struct {
		Messages map[string]struct {
			Payload struct {
				Properties struct {
					Version struct{ Const int }
					Data    struct {
						Properties map[string]any
					}
				}
			}
		}
	}
}

// Read as a consumer of the document would, the committed copy says who
// sends and who receives every event, and each message's data has the
// contract type's members. This names what is missing where the byte
// comparison above only says "different".
func TestDocumentListsEveryPublisherConsumerAndField(t *testing.T) {
	raw, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	var doc document
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.AsyncAPI != "3.0.0" {
		t.Errorf("asyncapi: %q, want 3.0.0", doc.AsyncAPI)
	}
	want := map[string]bool{}
	check := func(s service.Spec, action, subject string, body events.Body) {
		id := asyncapi.OperationID(s.Name, action, subject)
		want[id] = true
		op, ok := doc.Operations[id]
		if !ok || op.Action != action || op.Channel.Ref != "#/channels/"+subject {
			t.Errorf("%s %ss %s; the document has no such operation (%s)", s.Name, action, subject, id)
		}
		if ch, ok := doc.Channels[subject]; !ok || ch.Address != subject {
			t.Errorf("no channel with the address %s", subject)
		}
		if body == nil {
			return
		}
		msg, ok := doc.Components.Messages[asyncapi.MessageID(body)]
		if !ok {
			t.Errorf("no message %s", asyncapi.MessageID(body))
			return
		}
		if v := msg.Payload.Properties.Version.Const; v != body.EventVersion() {
			t.Errorf("%s: version %d, the contract's is %d", subject, v, body.EventVersion())
		}
		typ := reflect.TypeOf(body)
		for i := range typ.NumField() {
			name := jsonName(typ.Field(i))
			if _, ok := msg.Payload.Properties.Data.Properties[name]; !ok && name != "" {
				t.Errorf("%s: data has no member %q, which %s has", subject, name, typ)
			}
		}
		if got, want := len(msg.Payload.Properties.Data.Properties), typ.NumField(); got != want {
			t.Errorf("%s: data has %d members, %s has %d fields", subject, got, typ, want)
		}
	}
	bodies := map[string]events.Body{}
	for _, s := range topology.Services() {
		for _, b := range s.Publishes {
			bodies[b.EventType()] = b
			check(s, "send", b.EventType(), b)
		}
	}
	for _, s := range topology.Services() {
		for _, subject := range s.Consumes {
			check(s, "receive", subject, bodies[subject])
		}
		// Earlier versions still in a stream are messages of their own.
		for _, b := range s.Older {
			check(s, "send", b.EventType(), b)
		}
	}
	for id := range doc.Operations {
		if !want[id] {
			t.Errorf("the document lists the operation %s, which no service's Spec has", id)
		}
	}
}

func jsonName(f reflect.StructField) string {
	tag := f.Tag.Get("json")
	for i, c := range tag {
		if c == ',' {
			tag = tag[:i]
			break
		}
	}
	if tag == "-" {
		return ""
	}
	if tag == "" {
		return f.Name
	}
	return tag
}
