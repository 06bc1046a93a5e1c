package intake

import (
	"container/list"
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/payrail/payrail/internal/store"
)

// Defaults of the token endpoint's protections (Config fields override).
const (
	// defaultHashWait is how long a token request waits for a hashing slot
	// before it is answered 503 with Retry-After.
	defaultHashWait = 2 * time.Second
	// Failed token requests: per source address, and per (client, source)
	// pair. See Server.token for the rule.
	defaultSourceFailureBurst = 20
	defaultSourceFailureRate  = rate.Limit(1.0 / 3) // 20 a minute once the burst is spent
	defaultPairFailureBurst   = 5
	defaultPairFailureRate    = rate.Limit(1.0 / 12) // 5 a minute
	// defaultClientCacheTTL bounds how long a disabled, re-roled or rotated
	// client's old tokens keep working on one API process.
	defaultClientCacheTTL = 3 * time.Second
	// Caps on the entries of each limiter map and of the client cache. At a
	// few hundred bytes an entry these are a few MiB each at most.
	maxLimiterEntries     = 20_000
	maxClientCacheEntries = 10_000
	// maxTokenCacheEntries bounds the verified tokens remembered
	// (auth.Verifier), a few hundred bytes each.
	maxTokenCacheEntries = 10_000
)

// keyedLimiter is a set of token buckets by key whose memory is bounded:
// at most max entries, and an entry idle long enough for its bucket to
// refill completely is dropped (a fresh bucket is the same bucket). The
// entries form a list ordered by last charge, so expired ones are found at
// its back; when the map is full and nothing has expired, the least
// recently charged entry goes.
type keyedLimiter struct {
	rps   rate.Limit
	burst int
	max   int
	idle  time.Duration // time for an empty bucket to refill

	mu      sync.Mutex
	entries map[string]*list.Element
	order   list.List // of *limiterEntry, most recently charged first
}

type limiterEntry struct {
	key  string
	lim  *rate.Limiter
	last time.Time
}

func newKeyedLimiter(rps rate.Limit, burst, max int) *keyedLimiter {
	idle := time.Duration(math.Ceil(float64(burst)/float64(rps)*float64(time.Second))) + time.Second
	return &keyedLimiter{rps: rps, burst: burst, max: max, idle: idle, entries: map[string]*list.Element{}}
}

// entry returns key's bucket, creating it when create is set; the caller
// holds l.mu.
func (l *keyedLimiter) entry(key string, now time.Time, create bool) *limiterEntry {
	if el, ok := l.entries[key]; ok {
		e := el.Value.(*limiterEntry)
		if now.Sub(e.last) < l.idle {
			if create {
				e.last = now
				l.order.MoveToFront(el)
			}
			return e
		}
		l.remove(el) // refilled: the same as no entry
	}
	if !create {
		return nil
	}
	for back := l.order.Back(); back != nil && now.Sub(back.Value.(*limiterEntry).last) >= l.idle; back = l.order.Back() {
		l.remove(back)
	}
	for len(l.entries) >= l.max {
		l.remove(l.order.Back())
	}
	// Keys are copied so that an entry never pins a request's memory.
	e := &limiterEntry{key: strings.Clone(key), lim: rate.NewLimiter(l.rps, l.burst), last: now}
	l.entries[e.key] = l.order.PushFront(e)
	return e
}

func (l *keyedLimiter) remove(el *list.Element) {
	delete(l.entries, el.Value.(*limiterEntry).key)
	l.order.Remove(el)
}

// allow takes a token for key, or says how many seconds until one is free.
func (l *keyedLimiter) allow(key string) (retryAfter int, ok bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.entry(key, now, true).lim
	res := b.ReserveN(now, 1)
	if delay := res.DelayFrom(now); delay > 0 {
		res.CancelAt(now)
		return seconds(delay), false
	}
	return 0, true
}

// blocked reports whether key's bucket is empty, without taking a token
// and without creating an entry.
func (l *keyedLimiter) blocked(key string) (retryAfter int, blocked bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(key, now, false)
	if e == nil {
		return 0, false
	}
	if tokens := e.lim.TokensAt(now); tokens < 1 {
		return seconds(time.Duration((1 - tokens) / float64(l.rps) * float64(time.Second))), true
	}
	return 0, false
}

// charge takes a token from key's bucket if one is left.
func (l *keyedLimiter) charge(key string) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entry(key, now, true).lim.AllowN(now, 1)
}

func (l *keyedLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

func seconds(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }

// hashGate bounds concurrent secret hashing: argon2id takes 19 MiB per
// hash, so unbounded parallel token requests take unbounded memory. A
// request that finds every slot taken waits up to wait in a queue of at
// most maxWaiting; otherwise it is refused.
type hashGate struct {
	slots      chan struct{}
	waiting    atomic.Int64
	maxWaiting int64
	wait       time.Duration
}

func newHashGate(slots, maxWaiting int, wait time.Duration) *hashGate {
	return &hashGate{slots: make(chan struct{}, slots), maxWaiting: int64(maxWaiting), wait: wait}
}

func (g *hashGate) acquire(ctx context.Context) bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
	}
	if g.waiting.Add(1) > g.maxWaiting {
		g.waiting.Add(-1)
		return false
	}
	defer g.waiting.Add(-1)
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func (g *hashGate) release() { <-g.slots }

// clientCache remembers each API client's current state (enabled, role,
// credential version) for ttl, so that authenticated requests check their
// token against the client row without a query per request, and a
// revocation takes effect within ttl. Keys are subjects of verified
// tokens; the cache holds at most max entries.
type clientCache struct {
	ttl  time.Duration
	max  int
	load func(ctx context.Context, clientID string) (store.Client, error)

	mu      sync.Mutex
	entries map[string]cachedClient
}

type cachedClient struct {
	found   bool
	orgID   string
	role    string
	version int64
	enabled bool
	fetched time.Time
}

func (c *clientCache) get(ctx context.Context, clientID string) (cachedClient, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[clientID]
	c.mu.Unlock()
	if ok && now.Sub(e.fetched) < c.ttl {
		return e, nil
	}
	cl, err := c.load(ctx, clientID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		e = cachedClient{fetched: now}
	case err != nil:
		return cachedClient{}, err
	default:
		e = cachedClient{found: true, orgID: cl.OrgID, role: cl.Role, version: cl.Version, enabled: !cl.Disabled, fetched: now}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, old := range c.entries {
			if now.Sub(old.fetched) >= c.ttl {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[strings.Clone(clientID)] = e
	return e, nil
}

// sourceKey names the address a request comes from, for per-source
// limits: the peer's IP (RemoteAddr). X-Forwarded-For is believed only
// when the peer is one of the trusted proxies, and then only up to the
// first hop that is not: the rightmost untrusted address is the client.
// IPv6 addresses count by /64, the block one subscriber typically gets.
func sourceKey(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return "unknown"
	}
	addr = addr.Unmap()
	if len(trusted) > 0 && isTrusted(addr, trusted) {
		hops := r.Header.Values("X-Forwarded-For")
		var all []string
		for _, h := range hops {
			all = append(all, strings.Split(h, ",")...)
		}
		for i := len(all) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(all[i]))
			if err != nil {
				break // a garbled hop: stop at the last proxy we trust
			}
			addr = hop.Unmap()
			if !isTrusted(addr, trusted) {
				break
			}
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
