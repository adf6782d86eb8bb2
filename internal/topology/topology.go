// Package topology is the one table of microshop's services: which ones
// the binary holds, in what order they start, and on which port each
// listens by default. Everything else about the system's wiring derives
// from the table and from what each service's Spec says it calls,
// publishes and consumes: the default URL of every peer a service needs,
// the gateway's routes, the environment `microshop run` gives each
// service, and a picture of the whole (Mermaid).
//
// A new service adds its folder under services/ and one line here.
package topology

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/services/gateway"
	"github.com/microshop/microshop/services/inventory"
	"github.com/microshop/microshop/services/notifications"
	"github.com/microshop/microshop/services/orders"
	"github.com/microshop/microshop/services/payments"
	"github.com/microshop/microshop/services/reports"
	"github.com/microshop/microshop/services/users"
)

// GatewayPort is the gateway's default port; the other services' default
// ports follow it.
const GatewayPort = 8080

// Services lists every service in start order, with its default port
// and the default URLs of its peers filled in. users starts first, since
// the others fetch its keys as they start; the gateway, the one public
// entry, starts last and routes to every service before it.
func Services() []service.Spec {
	specs := []service.Spec{
		at(8081, users.Spec()),
		at(8082, inventory.Spec()),
		at(8083, orders.Spec()),
		at(8084, payments.Spec()),
		at(8085, notifications.Spec()),
		at(8086, reports.Spec()),
	}
	specs = append(specs, at(GatewayPort, gateway.Spec(names(specs)...)))
	ports := map[string]int{}
	for _, s := range specs {
		ports[s.Name] = s.Port
	}
	for i, s := range specs {
		specs[i].Peers = map[string]string{}
		for _, peer := range s.Needs() {
			if p, ok := ports[peer]; ok {
				specs[i].Peers[peer] = fmt.Sprintf("http://127.0.0.1:%d", p)
			}
		}
	}
	return specs
}

func at(port int, s service.Spec) service.Spec {
	s.Port = port
	return s
}

func names(specs []service.Spec) []string {
	var out []string
	for _, s := range specs {
		out = append(out, s.Name)
	}
	return out
}

// Find returns the service named name.
func Find(name string) (service.Spec, bool) {
	for _, s := range Services() {
		if s.Name == name {
			return s, true
		}
	}
	return service.Spec{}, false
}

// Names lists the services' names in alphabetical order, for messages.
func Names() []string {
	out := names(Services())
	sort.Strings(out)
	return out
}

// Port is the port of s when the gateway listens on gateway instead of
// GatewayPort: every service keeps its distance from the gateway (users
// at gateway+1, and so on).
func Port(s service.Spec, gateway int) int {
	return gateway + s.Port - GatewayPort
}

// Env is the part of s's environment that tells it where its peers are:
// MICROSHOP_<PEER>_URL=url(peer) for each service it needs (Spec.Needs),
// and no others.
func Env(s service.Spec, url func(peer string) string) []string {
	var env []string
	for _, peer := range s.Needs() {
		env = append(env, config.EnvName(peer+"-url")+"="+url(peer))
	}
	return env
}

// Kind is what an Edge carries.
type Kind string

const (
	// HTTP is a call over HTTP, from the caller to the callee.
	HTTP Kind = "http"
	// Events are events sent through NATS, from the publisher to a
	// consumer.
	Events Kind = "events"
)

// Edge is one arrow of the system's picture.
type Edge struct {
	From, To string
	Kind     Kind
	// Subjects are the events' subjects (Kind Events), in the order the
	// publisher lists them.
	Subjects []string
}

// Edges lists the HTTP calls between services (but not the key set every
// service fetches from users: that is everyone's) and, for each pair of
// publisher and consumer, the events that go from one to the other.
func Edges() []Edge {
	specs := Services()
	var edges []Edge
	for _, s := range specs {
		for _, callee := range s.Calls {
			edges = append(edges, Edge{From: s.Name, To: callee, Kind: HTTP})
		}
	}
	for _, pub := range specs {
		for _, sub := range specs {
			var subjects []string
			for _, t := range pub.EventTypes() {
				if slices.Contains(sub.Consumes, t) {
					subjects = append(subjects, t)
				}
			}
			if len(subjects) > 0 {
				edges = append(edges, Edge{From: pub.Name, To: sub.Name, Kind: Events, Subjects: subjects})
			}
		}
	}
	return edges
}

// Mermaid draws the system as a Mermaid flowchart: clients reach the
// gateway; solid arrows are HTTP calls, dotted ones events through NATS,
// labelled with their subjects.
func Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	b.WriteString("    clients([clients])\n")
	for _, s := range Services() {
		fmt.Fprintf(&b, "    %s[\"%s :%d\"]\n", s.Name, s.Name, s.Port)
	}
	fmt.Fprintf(&b, "    clients --> %s\n", gateway.Spec().Name)
	for _, e := range Edges() {
		switch e.Kind {
		case HTTP:
			fmt.Fprintf(&b, "    %s --> %s\n", e.From, e.To)
		case Events:
			fmt.Fprintf(&b, "    %s -.->|\"%s\"| %s\n", e.From, strings.Join(e.Subjects, "<br/>"), e.To)
		}
	}
	return b.String()
}
