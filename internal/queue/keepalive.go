package queue

import (
	"time"

	"github.com/nats-io/nats.go"
)

// A role's connection pings its server every PingInterval and gives the
// connection up as stale when MaxPingsOutstanding pings in a row go
// unanswered: a hung server (SIGSTOP, a frozen VM, a half-open TCP
// connection) is left after 6–8 s, and the client reconnects to another
// node of the cluster. nats.go's defaults (2 minutes, 2 pings) kept every
// role on a hung node for up to 6 minutes. A pong costs a few bytes; a
// healthy server on a loaded host answers well within 2 s.
const (
	PingInterval        = 2 * time.Second
	MaxPingsOutstanding = 3
)

// Keepalive are the nats.Connect options every role uses to notice a
// dead or hung server (see PingInterval).
func Keepalive() []nats.Option {
	return []nats.Option{nats.PingInterval(PingInterval), nats.MaxPingsOutstanding(MaxPingsOutstanding)}
}
