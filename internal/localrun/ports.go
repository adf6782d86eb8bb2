package localrun

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"

	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/internal/topology"
)

// Ports is the port plan of one run: every port it listens on follows
// from the gateway's port, except the broker's, which is given apart.
//
//	gateway          Gateway
//	users ... reports Gateway+1 ... Gateway+6, in the order of their Spec.Port
//	mailbox web API  Gateway+7
//	mailbox SMTP     Gateway+8
//	trace collector  Gateway+9
//	replica k        the service's port + 100×k (k < MaxReplicas)
//	NATS             NATS
type Ports struct {
	Gateway int
	NATS    int
}

const (
	// MaxReplicas is how many replicas of one service a run can hold.
	// Every service is told all these ports of the others: their
	// balancers probe them and use the ones that are up, so scaling
	// needs no reconfiguration.
	MaxReplicas = 5
	// replicaStep is the distance between the ports of two replicas.
	replicaStep = 100
	// Span is how many consecutive ports a run takes from Gateway up.
	Span = 10
	// MaxGatewayPort is the highest gateway port that leaves room for
	// every port of the plan.
	MaxGatewayPort = 65535 - (Span - 1) - replicaStep*(MaxReplicas-1)
)

// Service is the port of replica 0 of spec: the gateway on Gateway, the
// others after it in the order their Spec.Port gives (users 8081 is +1).
func (p Ports) Service(spec service.Spec) int {
	if spec.Name == "gateway" {
		return p.Gateway
	}
	return topology.Port(spec, p.Gateway)
}

// Replica is the port of replica slot of spec.
func (p Ports) Replica(spec service.Spec, slot int) int {
	return p.Service(spec) + replicaStep*slot
}

// Mailbox is the port of the built-in mailbox's web API.
func (p Ports) Mailbox() int { return p.Gateway + 7 }

// SMTP is the port of the built-in mailbox's SMTP server.
func (p Ports) SMTP() int { return p.Gateway + 8 }

// Collector is the port of the built-in trace collector.
func (p Ports) Collector() int { return p.Gateway + 9 }

// check says whether the plan fits in the port range.
func (p Ports) check() error {
	if p.Gateway < 1 || p.Gateway > MaxGatewayPort {
		return fmt.Errorf("--port %d: want a port between 1 and %d", p.Gateway, MaxGatewayPort)
	}
	if p.NATS < 1 || p.NATS > 65535 {
		return fmt.Errorf("--nats-port %d: want a port between 1 and 65535", p.NATS)
	}
	return nil
}

// FreePorts finds a plan whose every port is free now: Span ports from
// the gateway, NATS right after them, and the same block at each replica
// step. It looks below Linux's ephemeral range (32768 and up), where the
// ports that outgoing connections borrow would otherwise collide with a
// replica's. Another program may still take one before run does; Launch
// tries again when that happens.
func FreePorts() (Ports, error) {
	const low, high = 20000, 32000 - replicaStep*MaxReplicas
	for range 200 {
		base := low + rand.IntN(high-low)
		if blockFree(base, Span+1) {
			return Ports{Gateway: base, NATS: base + Span}, nil
		}
	}
	return Ports{}, errors.New("found no block of free ports on the loopback")
}

// blockFree reports whether n ports from base, and the same n at every
// replica step, can be listened on.
func blockFree(base, n int) bool {
	for k := range MaxReplicas {
		for p := base + replicaStep*k; p < base+replicaStep*k+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				return false
			}
			l.Close()
		}
	}
	return true
}
