// Package asyncapi writes microshop's events as an AsyncAPI 3.0 document:
// one channel per NATS subject, one message per event type and version
// (its payload is the envelope every event travels in, with the contract
// type's schema as data), a send operation for the service that publishes
// it and a receive operation for each service that consumes it.
//
// The document is made from the services' Specs (Publishes, Consumes) and
// the contract types by reflection, never by hand; its committed copy,
// services/gateway/asyncapi.yaml, which the gateway serves, is checked
// against a fresh one by this package's test.
package asyncapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/service"
)

// obj is a JSON object whose keys sigs.k8s.io/yaml writes sorted, so the
// document is the same bytes for the same contracts.
type obj = map[string]any

// Document returns the AsyncAPI 3.0 document, as YAML, of the events the
// services publish and consume.
func Document(specs []service.Spec) ([]byte, error) {
	bodies := map[string]events.Body{} // by subject
	publisher := map[string]string{}
	for _, s := range specs {
		for _, b := range s.Publishes {
			subject := b.EventType()
			if other, ok := publisher[subject]; ok {
				return nil, fmt.Errorf("%s is published by both %s and %s", subject, other, s.Name)
			}
			if owner := events.Owner(subject); owner != s.Name {
				return nil, fmt.Errorf("%s publishes %s, which only %s's stream carries", s.Name, subject, owner)
			}
			bodies[subject], publisher[subject] = b, s.Name
		}
	}
	// Earlier versions a stream may still hold, by subject, newest first.
	older := map[string][]events.Body{}
	for _, s := range specs {
		for _, b := range s.Older {
			subject := b.EventType()
			cur, ok := bodies[subject]
			switch {
			case !ok || publisher[subject] != s.Name:
				return nil, fmt.Errorf("%s lists an older version of %s, which it does not publish", s.Name, subject)
			case b.EventVersion() >= cur.EventVersion():
				return nil, fmt.Errorf("%s lists version %d of %s as older than the version %d it publishes", s.Name, b.EventVersion(), subject, cur.EventVersion())
			}
			older[subject] = append(older[subject], b)
		}
	}
	channels, operations, messages := obj{}, obj{}, obj{}
	for subject, b := range bodies {
		msgID := MessageID(b)
		messages[msgID] = message(subject, b, "")
		refs := obj{msgID: obj{"$ref": "#/components/messages/" + msgID}}
		received := []string{msgID}
		for _, o := range older[subject] {
			id := MessageID(o)
			messages[id] = message(subject, o, fmt.Sprintf(" No longer published: %s publishes version %d; its stream may hold version %d events for up to its --stream-max-age, and consumers still decode them.",
				publisher[subject], b.EventVersion(), o.EventVersion()))
			refs[id] = obj{"$ref": "#/components/messages/" + id}
			received = append(received, id)
		}
		channels[subject] = obj{
			"address":     subject,
			"title":       subject,
			"description": fmt.Sprintf("Published by %s on the JetStream stream %s (subjects %s.>).", publisher[subject], events.StreamName(publisher[subject]), publisher[subject]),
			"messages":    refs,
		}
		operations[OperationID(publisher[subject], "send", subject)] = operation("send", subject, []string{msgID},
			fmt.Sprintf("%s publishes %s through its transactional outbox.", publisher[subject], subject))
		for _, s := range specs {
			if slices.Contains(s.Consumes, subject) {
				operations[OperationID(s.Name, "receive", subject)] = operation("receive", subject, received,
					fmt.Sprintf("%s consumes %s through its durable consumer %s, inbox-guarded.", s.Name, subject, events.DurableName(s.Name, subject)))
			}
		}
	}
	for _, s := range specs {
		for _, subject := range s.Consumes {
			if _, ok := bodies[subject]; !ok {
				return nil, fmt.Errorf("%s consumes %s, which no service publishes", s.Name, subject)
			}
		}
	}
	doc := obj{
		"asyncapi": "3.0.0",
		"info": obj{
			"title":   "microshop events",
			"version": "1.0.0",
			"description": "Domain events of microshop's services on NATS JetStream: one stream per publishing service, " +
				"subjects <service>.<event>. Every message is an envelope {id, type, version, time, data}; consumers ignore " +
				"members they do not know, and a new major version of an event is a new message with its own version. " +
				"Generated from the services' contract types (internal/asyncapi); do not edit by hand.",
		},
		"defaultContentType": "application/json",
		"servers": obj{
			"local": obj{
				"host":        "127.0.0.1:4223",
				"protocol":    "nats",
				"description": "the NATS JetStream of `microshop run` (a service's --nats flag names another)",
			},
		},
		"channels":   channels,
		"operations": operations,
		"components": obj{"messages": messages},
	}
	j, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding the asyncapi document: %w", err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return nil, fmt.Errorf("encoding the asyncapi document: %w", err)
	}
	return append([]byte("# Generated by internal/asyncapi from the services' contract types: go test ./internal/asyncapi -update\n"), y...), nil
}

// MessageID names the message of an event type and version:
// "orders.confirmed.v1".
func MessageID(b events.Body) string {
	return fmt.Sprintf("%s.v%d", b.EventType(), b.EventVersion())
}

// OperationID names what a service does with a subject:
// "notifications.receive.orders.confirmed".
func OperationID(service, action, subject string) string {
	return service + "." + action + "." + subject
}

func operation(action, subject string, msgIDs []string, description string) obj {
	var refs []any
	for _, id := range msgIDs {
		refs = append(refs, obj{"$ref": "#/channels/" + subject + "/messages/" + id})
	}
	return obj{
		"action":      action,
		"channel":     obj{"$ref": "#/channels/" + subject},
		"description": description,
		"messages":    refs,
	}
}

// message is the message of one version of an event; note ends its
// summary.
func message(subject string, b events.Body, note string) obj {
	m := obj{
		"name":        reflect.TypeOf(b).Name(),
		"title":       fmt.Sprintf("%s, version %d", subject, b.EventVersion()),
		"summary":     fmt.Sprintf("The envelope of a %s event, version %d; data is a %s.%s", subject, b.EventVersion(), goName(b), note),
		"contentType": "application/json",
		"headers": obj{
			"type": "object",
			"properties": obj{
				"Nats-Msg-Id": obj{"type": "string", "description": "the event id: the broker drops a second publish of it within the duplicate window"},
				"traceparent": obj{"type": "string", "description": "W3C trace context of the request that caused the event"},
			},
		},
		"payload": envelope(b),
	}
	return m
}

func goName(b events.Body) string {
	t := reflect.TypeOf(b)
	return t.PkgPath()[strings.LastIndex(t.PkgPath(), "/")+1:] + "." + t.Name()
}

// envelope is the schema of events.Event carrying b as data.
func envelope(b events.Body) obj {
	data := schemaOf(reflect.TypeOf(b))
	data["title"] = goName(b)
	return obj{
		"type":     "object",
		"required": []string{"id", "type", "version", "time", "data"},
		"properties": obj{
			"id":      obj{"type": "string", "description": "unique per event; also the message's Nats-Msg-Id"},
			"type":    obj{"type": "string", "const": b.EventType()},
			"version": obj{"type": "integer", "const": b.EventVersion()},
			"time":    obj{"type": "string", "format": "date-time"},
			"data":    data,
		},
	}
}

var timeType = reflect.TypeOf(time.Time{})

// schemaOf is the JSON schema of how encoding/json writes a value of t.
func schemaOf(t reflect.Type) obj {
	if t == timeType {
		return obj{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		s := schemaOf(t.Elem())
		s["type"] = []any{s["type"], "null"}
		return s
	case reflect.String:
		return obj{"type": "string"}
	case reflect.Bool:
		return obj{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return obj{"type": "integer", "format": "int64"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return obj{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return obj{"type": "number"}
	case reflect.Slice, reflect.Array:
		return obj{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		return obj{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Struct:
		props, required := obj{}, []string{}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				// encoding/json lifts an embedded struct's fields.
				inner := schemaOf(f.Type)
				maps.Copy(props, inner["properties"].(obj))
				if r, ok := inner["required"].([]string); ok {
					required = append(required, r...)
				}
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = schemaOf(f.Type)
			if !slices.Contains(strings.Split(opts, ","), "omitempty") {
				required = append(required, name)
			}
		}
		sort.Strings(required)
		s := obj{"type": "object", "properties": props}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	}
	panic(fmt.Sprintf("asyncapi: no schema for %s", t))
}
