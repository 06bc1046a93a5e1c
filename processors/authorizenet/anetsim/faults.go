package anetsim

import (
	"math/rand/v2"
	"net"
	"net/http"
	"time"
)

// Fault is one way the simulator misbehaves on a request. The "After"
// faults happen once the request has been processed, so a charge is
// recorded although the client never learns of it: that is the case a
// payment client must survive without charging twice.
type Fault int

const (
	// NoFault answers normally.
	NoFault Fault = iota
	// FaultStatus5xx answers 503 without processing the request.
	FaultStatus5xx
	// FaultStatus5xxAfter processes the request, then answers 502, as a
	// proxy in front of a gateway that did its work might.
	FaultStatus5xxAfter
	// FaultHang never answers and processes nothing; the handler returns
	// when the client gives up or the server closes.
	FaultHang
	// FaultHangAfter processes the request, then never answers.
	FaultHangAfter
	// FaultDrop resets the connection without processing the request.
	FaultDrop
	// FaultDropAfter processes the request, then resets the connection.
	FaultDropAfter
)

var faultNames = map[Fault]string{
	NoFault: "none", FaultStatus5xx: "5xx", FaultStatus5xxAfter: "5xx-after",
	FaultHang: "hang", FaultHangAfter: "hang-after", FaultDrop: "drop", FaultDropAfter: "drop-after",
}

func (f Fault) String() string {
	if n, ok := faultNames[f]; ok {
		return n
	}
	return "fault(?)"
}

// after reports whether the fault strikes once the request is processed.
func (f Fault) after() bool {
	return f == FaultStatus5xxAfter || f == FaultHangAfter || f == FaultDropAfter
}

// Faults is random misbehaviour applied to every request. Rates are
// shares of requests in [0, 1]; each of 5xx, hang and drop strikes before
// or after processing with equal odds.
type Faults struct {
	// Latency delays every answer (after processing, so a client that
	// times out during it leaves a charge behind, as in real life).
	Latency time.Duration
	// Jitter adds a uniformly random delay in [0, Jitter).
	Jitter    time.Duration
	ErrorRate float64
	HangRate  float64
	DropRate  float64
}

// scripted is a fault queued by a test for the next matching request.
type scripted struct {
	method string // "" matches any method
	fault  Fault
}

// pickFault takes the first queued fault for method, else rolls the
// random rates. The caller holds s.mu.
func (s *Server) pickFault(method string) Fault {
	for i, q := range s.queue {
		if q.method == "" || q.method == method {
			s.queue = append(s.queue[:i:i], s.queue[i+1:]...)
			return q.fault
		}
	}
	roll := func(rate float64, before, after Fault) Fault {
		if rate <= 0 || s.rng.Float64() >= rate {
			return NoFault
		}
		if s.rng.IntN(2) == 0 {
			return before
		}
		return after
	}
	for _, f := range []Fault{
		roll(s.faults.ErrorRate, FaultStatus5xx, FaultStatus5xxAfter),
		roll(s.faults.HangRate, FaultHang, FaultHangAfter),
		roll(s.faults.DropRate, FaultDrop, FaultDropAfter),
	} {
		if f != NoFault {
			return f
		}
	}
	return NoFault
}

func (s *Server) delay() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.faults.Latency
	if s.faults.Jitter > 0 {
		d += time.Duration(s.rng.Int64N(int64(s.faults.Jitter)))
	}
	return d
}

// strike carries out a fault on the response w. It reports false for
// NoFault, leaving the answer to the caller.
func (s *Server) strike(f Fault, w http.ResponseWriter, r *http.Request) bool {
	switch f {
	case FaultStatus5xx:
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
	case FaultStatus5xxAfter:
		http.Error(w, "Bad Gateway", http.StatusBadGateway)
	case FaultHang, FaultHangAfter:
		s.hang(r)
		drop(w)
	case FaultDrop, FaultDropAfter:
		drop(w)
	default:
		return false
	}
	return true
}

// hang waits until the client goes away, the server closes or MaxHang
// passes, whichever comes first.
func (s *Server) hang(r *http.Request) {
	t := time.NewTimer(s.opts.MaxHang)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-s.closed:
	case <-t.C:
	}
}

// drop resets the connection: the client sees "connection reset by peer"
// or EOF and no HTTP response at all.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// HTTP/2 cannot be hijacked; aborting the handler resets the stream.
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST rather than FIN
	}
	_ = conn.Close()
}

// newRand returns the fault generator: seeded for reproducible runs, or
// from the runtime's entropy when seed is 0.
func newRand(seed uint64) *rand.Rand {
	if seed == 0 {
		return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}
