package contractcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/platform/events"
)

// expectation is an event the scripted calls should have caused.
type expectation struct {
	typ    string
	cause  string
	strict bool // not observing it is a failure, not a warning
	match  func(data map[string]any) bool
	seen   bool
}

// eventCheck reads the service's stream from where it stood before the
// scripted calls.
type eventCheck struct {
	nc      *nats.Conn
	stream  jetstream.Stream
	js      jetstream.JetStream
	name    string
	next    uint64 // the next sequence to read
	start   uint64 // the first sequence after the stream's state before the calls
	known   map[string]events.Body
	expects []*expectation
	cannot  map[string]string // type -> why the calls could not cause one

	checked  map[string]int      // type -> events checked
	problems map[string][]string // type -> what was wrong with its events
	unknown  map[string]int      // types the contract does not know
	msgIDs   []string            // events published without their id as Nats-Msg-Id
}

func (r *run) startEvents(ctx context.Context) *eventCheck {
	bodies := r.cfg.Events
	name := events.StreamName(r.cfg.Service)
	op := "events " + name
	if len(bodies) == 0 {
		if r.cfg.NATS != "" {
			r.record(op, "stream", Skip, 0, r.cfg.Service+" publishes no events; nothing to check")
		}
		return nil
	}
	if r.cfg.NATS == "" {
		r.record(op, "stream", Skip, 0, "pass --nats <URL> to check the events "+r.cfg.Service+" publishes: "+strings.Join(eventTypes(bodies), ", "))
		return nil
	}
	nc, err := nats.Connect(r.cfg.NATS, nats.Name("microshop contract"), nats.Timeout(5*time.Second), nats.MaxReconnects(2))
	if err != nil {
		r.record(op, "stream", Fail, 0, "connecting to "+r.cfg.NATS+": "+err.Error())
		return nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		r.record(op, "stream", Fail, 0, "JetStream: "+err.Error())
		return nil
	}
	e := &eventCheck{nc: nc, js: js, name: name, next: 1, known: map[string]events.Body{}, cannot: map[string]string{},
		checked: map[string]int{}, problems: map[string][]string{}, unknown: map[string]int{}}
	for _, b := range bodies {
		e.known[b.EventType()] = b
	}
	if s, err := js.Stream(ctx, name); err == nil {
		if info, err := s.Info(ctx); err == nil {
			e.stream, e.next, e.start = s, info.State.LastSeq+1, info.State.LastSeq+1
		}
	}
	return e
}

// expectEvent notes that the call just made should cause an event of typ
// whose body match accepts (nil: any).
func (r *run) expectEvent(typ, cause string, strict bool, match func(map[string]any) bool) {
	if r.events != nil {
		r.events.expects = append(r.events.expects, &expectation{typ: typ, cause: cause, strict: strict, match: match})
	}
}

// cannotCause notes why the calls could not cause an event of typ.
func (r *run) cannotCause(typ, why string) {
	if r.events != nil && r.events.cannot[typ] == "" {
		r.events.cannot[typ] = why
	}
}

// field matches events whose body member name is value.
func field(name, value string) func(map[string]any) bool {
	return func(d map[string]any) bool {
		v, _ := d[name].(string)
		return v != "" && strings.EqualFold(v, value)
	}
}

func (r *run) finishEvents(ctx context.Context) {
	e := r.events
	if e == nil {
		return
	}
	defer e.nc.Close()
	op := "events " + e.name
	deadline := time.Now().Add(r.cfg.EventWait)
	grace := time.Time{}
	for {
		err := e.read(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			r.record(op, "read the stream", Fail, 0, err.Error())
			return
		}
		strictDone, allDone := true, true
		for _, x := range e.expects {
			if !x.seen {
				allDone = false
				if x.strict {
					strictDone = false
				}
			}
		}
		if allDone || time.Now().After(deadline) {
			break
		}
		if strictDone {
			if grace.IsZero() {
				grace = time.Now().Add(time.Second)
			} else if time.Now().After(grace) {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	if e.stream == nil {
		r.record(op, "stream", Fail, 0, "JetStream has no stream "+e.name+"; "+r.cfg.Service+" must publish its events on it (subjects "+r.cfg.Service+".<event>)")
	} else {
		r.record(op, "stream", Pass, 0, fmt.Sprintf("%d event(s) read from sequence %d on", e.total(), max(e.start, 1)))
	}
	if len(e.msgIDs) > 0 {
		r.record(op, "Nats-Msg-Id is the event id", Warn, 0,
			fmt.Sprintf("%d event(s) published without their id as Nats-Msg-Id, so the broker cannot drop a duplicate publish (e.g. %s)", len(e.msgIDs), e.msgIDs[0]))
	}
	types := slices.Sorted(maps.Keys(e.known))
	for _, t := range types {
		key := "event " + t
		switch n, probs := e.checked[t], e.problems[t]; {
		case len(probs) > 0:
			r.record(key, "envelope and body", Fail, 0, fmt.Sprintf("%d of %d events wrong: %s", len(probs), n, strings.Join(first(probs, 3), "; ")))
		case n > 0:
			r.record(key, "envelope and body", Pass, 0, fmt.Sprintf("%d event(s): id, type, version %d, time, body decodes into %s",
				n, e.known[t].EventVersion(), reflect.TypeOf(e.known[t]).String()))
		default:
			r.record(key, "envelope and body", Skip, 0, "none published during the check")
		}
		expected := false
		for _, x := range e.expects {
			if x.typ != t {
				continue
			}
			expected = true
			name := "published after " + x.cause
			switch {
			case x.seen:
				r.record(key, name, Pass, 0, "")
			case x.strict:
				r.record(key, name, Fail, 0, fmt.Sprintf("not observed within %s", r.cfg.EventWait))
			default:
				r.record(key, name, Warn, 0, fmt.Sprintf("not observed within %s (the calls may not cause one in every configuration)", r.cfg.EventWait))
			}
		}
		if !expected && e.checked[t] == 0 {
			why := e.cannot[t]
			if why == "" {
				why = "no scripted call causes one"
			}
			r.record(key, "published", Warn, 0, "not observed: "+why)
		}
	}
	for _, t := range slices.Sorted(maps.Keys(e.unknown)) {
		r.record("event "+t, "a type the contract knows", Fail, 0,
			fmt.Sprintf("%d event(s) of a type %s's contract does not declare (it knows %s)", e.unknown[t], r.cfg.Service, strings.Join(types, ", ")))
	}
}

func (e *eventCheck) total() int {
	n := 0
	for _, c := range e.checked {
		n += c
	}
	for _, c := range e.unknown {
		n += c
	}
	return n
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// maxEvents bounds how many events one check reads.
const maxEvents = 10000

// read checks every event published since the last read.
func (e *eventCheck) read(ctx context.Context) error {
	if e.stream == nil {
		s, err := e.js.Stream(ctx, e.name)
		if err != nil {
			return err
		}
		e.stream = s
	}
	info, err := e.stream.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.FirstSeq > e.next {
		e.next = info.State.FirstSeq
	}
	for ; e.next <= info.State.LastSeq && e.total() < maxEvents; e.next++ {
		msg, err := e.stream.GetMsg(ctx, e.next)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		e.check(msg)
	}
	return nil
}

// check checks one event: the envelope's members, its type and major
// version against the contract, and that its body decodes into the
// contract's type (unknown members allowed).
func (e *eventCheck) check(msg *jetstream.RawStreamMsg) {
	var env struct {
		ID      *string          `json:"id"`
		Type    *string          `json:"type"`
		Version *json.Number     `json:"version"`
		Time    *string          `json:"time"`
		Data    *json.RawMessage `json:"data"`
	}
	typ := msg.Subject
	fail := func(format string, args ...any) {
		e.checked[typ]++
		e.problems[typ] = append(e.problems[typ], fmt.Sprintf("#%d: ", msg.Sequence)+fmt.Sprintf(format, args...))
	}
	if err := json.Unmarshal(msg.Data, &env); err != nil {
		if _, ok := e.known[typ]; !ok {
			e.unknown[typ]++
			return
		}
		fail("the envelope is not a JSON object with id, type, version, time and data: %v", err)
		return
	}
	if env.Type != nil {
		typ = *env.Type
	}
	body, ok := e.known[typ]
	if !ok {
		e.unknown[typ]++
		return
	}
	var probs []string
	if env.ID == nil || *env.ID == "" {
		probs = append(probs, "no id")
	}
	if env.Type == nil {
		probs = append(probs, "no type")
	} else if msg.Subject != *env.Type {
		probs = append(probs, fmt.Sprintf("type %s published on subject %s (want the subject to be the type)", *env.Type, msg.Subject))
	}
	if env.Version == nil {
		probs = append(probs, "no version")
	} else if v, err := env.Version.Int64(); err != nil || v != int64(body.EventVersion()) {
		probs = append(probs, fmt.Sprintf("version %s; the contract understands version %d", env.Version.String(), body.EventVersion()))
	}
	if env.Time == nil {
		probs = append(probs, "no time")
	} else if t, err := time.Parse(time.RFC3339Nano, *env.Time); err != nil || t.IsZero() {
		probs = append(probs, fmt.Sprintf("time %q is not an RFC 3339 time", *env.Time))
	}
	var data map[string]any
	if env.Data == nil {
		probs = append(probs, "no data")
	} else if err := json.Unmarshal(*env.Data, &data); err != nil {
		probs = append(probs, "data is not a JSON object")
	} else {
		v := reflect.New(reflect.TypeOf(body)).Interface()
		if err := json.Unmarshal(*env.Data, v); err != nil {
			probs = append(probs, fmt.Sprintf("data does not decode into %T: %v", body, err))
		}
	}
	if len(probs) > 0 {
		fail("%s", strings.Join(probs, ", "))
		return
	}
	e.checked[typ]++
	if id := msg.Header.Get("Nats-Msg-Id"); id != *env.ID {
		e.msgIDs = append(e.msgIDs, *env.ID)
	}
	for _, x := range e.expects {
		if !x.seen && x.typ == typ && (x.match == nil || x.match(data)) {
			x.seen = true
		}
	}
}

// eventTypes are the types of bodies.
func eventTypes(bodies []events.Body) []string {
	var out []string
	for _, b := range bodies {
		out = append(out, b.EventType())
	}
	return out
}
