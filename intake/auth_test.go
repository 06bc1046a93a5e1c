package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
)

// authRig drives one Server directly (ServeHTTP, no network), so that a
// test can choose each request's source address and count secret checks.
type authRig struct {
	t        *testing.T
	api      *Server
	store    *store.Store
	contract *contract
	org      string

	checks  atomic.Int64 // calls of checkSecret
	active  atomic.Int64 // checkSecret calls in progress
	maxSeen atomic.Int64 // most checkSecret calls in progress at once
	delay   time.Duration
}

func newAuthRig(t *testing.T, st *store.Store, mutate func(*Config)) *authRig {
	t.Helper()
	signer, err := auth.NewSigner(testSigningKey, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: st, Ring: env.Ring, Signer: signer, Registry: prometheus.NewRegistry(), RateLimit: 1000, RateBurst: 1000}
	if mutate != nil {
		mutate(&cfg)
	}
	api, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	r := &authRig{t: t, api: api, store: st, contract: c, org: testenv.UniqueID("org_")}
	api.checkSecret = func(hash, secret string) bool {
		r.checks.Add(1)
		n := r.active.Add(1)
		defer r.active.Add(-1)
		for m := r.maxSeen.Load(); n > m && !r.maxSeen.CompareAndSwap(m, n); m = r.maxSeen.Load() {
		}
		time.Sleep(r.delay)
		return auth.CheckSecret(hash, secret)
	}
	return r
}

// client creates an API client in the rig's org.
func (r *authRig) client(role string) (string, string) {
	r.t.Helper()
	secret, _ := auth.NewSecret()
	hash, err := auth.HashSecret(secret)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.store.EnsureOrg(ctx, r.org, r.org); err != nil {
		r.t.Fatal(err)
	}
	id := store.NewID("cli_")
	if err := r.store.CreateClient(ctx, store.Client{ClientID: id, OrgID: r.org, Name: "t", Role: role, SecretHash: hash}); err != nil {
		r.t.Fatal(err)
	}
	return id, secret
}

// token posts credentials from source (an IP) and checks the answer
// against openapi.yaml. It is safe for concurrent use.
func (r *authRig) token(source, id, secret string) *httptest.ResponseRecorder {
	body, _ := json.Marshal(map[string]string{"client_id": id, "client_secret": secret})
	req := httptest.NewRequest("POST", "http://payrail.test/auth/token", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = netip.AddrPortFrom(netip.MustParseAddr(source), 40000).String()
	rec := httptest.NewRecorder()
	r.api.ServeHTTP(rec, req)
	if r.contract == nil {
		return rec
	}
	if err := r.contract.check(req, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
		r.t.Errorf("the %d response breaks openapi.yaml: %v\nbody: %s", rec.Code, err, rec.Body.Bytes())
	}
	return rec
}

func errorCode(rec *httptest.ResponseRecorder) string {
	var e errorBody
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	return e.Error.Code
}

// A client_id payrail cannot have issued is answered 401 before the
// database is asked or a secret hashed: this server's pool is closed, so a
// lookup would answer 500.
func TestTokenMalformedClientIDRejectedBeforeLookup(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	r := newAuthRig(t, store.New(pool, env.Ring, canopy.Events{}), nil)
	for i, id := range []string{"cli_nobody", "CLI_ABCDEFGHIJKLMNOPQRST", "cli_abcdefghijklmnopqr1t", "acc_abcdefghijklmnopqrst",
		"cli_abcdefghijklmnopqrstu", "cli_" + strings.Repeat("a", 500_000)} {
		rec := r.token(fmt.Sprintf("192.0.2.%d", i+1), id, "sk_whatever")
		if rec.Code != 401 || errorCode(rec) != codeUnauthorized {
			t.Errorf("client_id %.40q: %d %s, want 401 unauthorized", id, rec.Code, rec.Body.Bytes())
		}
	}
	if n := r.checks.Load(); n != 0 {
		t.Errorf("%d secrets hashed for malformed client ids, want 0", n)
	}
}

// Unknown ids, disabled clients and wrong secrets all cost one hash, so
// the time taken does not tell which client ids exist or are enabled.
func TestTokenHashesLikeAKnownClient(t *testing.T) {
	r := newAuthRig(t, store.New(env.Pool, env.Ring, canopy.Events{}), nil)
	id, secret := r.client(auth.RoleReadonly)
	disabled, disabledSecret := r.client(auth.RoleReadonly)
	if _, err := r.store.DisableClient(context.Background(), disabled); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string][2]string{
		"unknown id":   {store.NewID("cli_"), secret},
		"wrong secret": {id, secret + "x"},
		"disabled":     {disabled, disabledSecret},
		"right":        {id, secret},
	} {
		before := r.checks.Load()
		rec := r.token("198.51.100.1", c[0], c[1])
		want := 401
		if name == "right" {
			want = 200
		}
		if rec.Code != want {
			t.Errorf("%s: %d %s, want %d", name, rec.Code, rec.Body.Bytes(), want)
		}
		if n := r.checks.Load() - before; n != 1 {
			t.Errorf("%s: %d secrets hashed, want 1", name, n)
		}
	}
}

// Parallel token requests hash at most TokenHashConcurrency secrets at
// once; those that cannot get a slot in time are answered 503 with
// Retry-After, never 500.
func TestTokenHashingConcurrencyBounded(t *testing.T) {
	r := newAuthRig(t, store.New(env.Pool, env.Ring, canopy.Events{}), func(c *Config) {
		c.TokenHashConcurrency, c.TokenHashQueue, c.TokenHashWait = 2, 4, 150*time.Millisecond
	})
	r.delay = 100 * time.Millisecond
	const n = 32
	codes := make([]int, n)
	retry := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			rec := r.token(fmt.Sprintf("192.0.2.%d", i+1), store.NewID("cli_"), "sk_guess")
			codes[i], retry[i] = rec.Code, rec.Header().Get("Retry-After")
		})
	}
	wg.Wait()
	if m := r.maxSeen.Load(); m > 2 {
		t.Errorf("%d secrets hashed at once, want at most 2", m)
	}
	count := map[int]int{}
	for i, c := range codes {
		count[c]++
		if c == 503 {
			if ra, err := strconv.Atoi(retry[i]); err != nil || ra < 1 {
				t.Errorf("503 with Retry-After %q", retry[i])
			}
		}
	}
	if count[401]+count[503] != n || count[503] == 0 || count[401] < 2 {
		t.Errorf("answers %v, want 401s and some 503s only", count)
	}
	t.Logf("answers %v, at most %d hashing at once", count, r.maxSeen.Load())
}

// Someone who knows a client_id and sends wrong secrets is limited by
// their own address; the client still gets tokens from its own.
func TestTokenFailuresDoNotLockOutClient(t *testing.T) {
	// Slow refills, so that only the bursts count however slow the machine.
	r := newAuthRig(t, store.New(env.Pool, env.Ring, canopy.Events{}), func(c *Config) {
		c.RateLimit, c.RateBurst = 0.01, 3 // tokens issued per client
		c.SourceFailureRate, c.SourceFailureBurst = 0.001, defaultSourceFailureBurst
		c.PairFailureRate, c.PairFailureBurst = 0.001, defaultPairFailureBurst
	})
	id, secret := r.client(auth.RoleServicing)
	const attacker, victim = "203.0.113.7", "198.51.100.20"

	count := map[int]int{}
	for range 30 {
		count[r.token(attacker, id, "sk_wrong").Code]++
	}
	if count[401] != defaultPairFailureBurst || count[429] != 30-defaultPairFailureBurst {
		t.Errorf("attacker's 30 wrong secrets answered %v, want %d 401 then 429", count, defaultPairFailureBurst)
	}
	if n := r.checks.Load(); n != defaultPairFailureBurst {
		t.Errorf("%d secrets hashed for the attacker, want %d", n, defaultPairFailureBurst)
	}
	// The client, from its own address, is not affected.
	for i := range 3 {
		if rec := r.token(victim, id, secret); rec.Code != 200 {
			t.Fatalf("client's token request %d after the attack: %d %s", i+1, rec.Code, rec.Body.Bytes())
		}
	}
	// Successful requests have their own per-client budget (burst 3).
	if rec := r.token(victim, id, secret); rec.Code != 429 || rec.Header().Get("Retry-After") == "" {
		t.Errorf("4th token in a second: %d %s, want 429 with Retry-After", rec.Code, rec.Body.Bytes())
	}

	// The attacker's address runs out across client ids too: 20 failures
	// in all (5 spent above), whatever the ids, malformed ones included.
	count = map[int]int{}
	for i := range 30 {
		cid := store.NewID("cli_")
		if i%2 == 1 {
			cid = "bogus"
		}
		count[r.token(attacker, cid, "sk_wrong").Code]++
	}
	if want := defaultSourceFailureBurst - defaultPairFailureBurst; count[401] != want || count[429] != 30-want {
		t.Errorf("attacker's 30 more tries answered %v, want %d 401 then 429", count, want)
	}
	rec := r.token(attacker, id, secret)
	if rec.Code != 429 || errorCode(rec) != codeRateLimited || rec.Header().Get("Retry-After") == "" {
		t.Errorf("blocked address: %d %s, want 429 with Retry-After", rec.Code, rec.Body.Bytes())
	}
	// Another address is not blocked.
	if rec := r.token("198.51.100.99", store.NewID("cli_"), "sk_wrong"); rec.Code != 401 {
		t.Errorf("other address: %d, want 401", rec.Code)
	}
}

func TestTokenSourceAddress(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tt := range []struct {
		remote, xff string
		trusted     []netip.Prefix
		want        string
	}{
		{"192.0.2.1:5000", "", nil, "192.0.2.1"},
		{"192.0.2.1:5000", "203.0.113.9", nil, "192.0.2.1"},               // not configured: ignored
		{"192.0.2.1:5000", "203.0.113.9", trusted, "192.0.2.1"},           // peer is not a trusted proxy
		{"10.1.2.3:5000", "203.0.113.9", trusted, "203.0.113.9"},          // behind a trusted proxy
		{"10.1.2.3:5000", "6.6.6.6, 203.0.113.9", trusted, "203.0.113.9"}, // the client cannot prepend
		{"10.1.2.3:5000", "203.0.113.9, 10.9.9.9", trusted, "203.0.113.9"},
		{"10.1.2.3:5000", "garbage", trusted, "10.1.2.3"},
		{"[2001:db8:1:2:3:4:5:6]:5000", "", nil, "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.1]:5000", "", nil, "192.0.2.1"},
	} {
		req := httptest.NewRequest("POST", "/auth/token", nil)
		req.RemoteAddr = tt.remote
		if tt.xff != "" {
			req.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := sourceKey(req, tt.trusted); got != tt.want {
			t.Errorf("sourceKey(%s, XFF %q, trusted %v) = %s, want %s", tt.remote, tt.xff, tt.trusted, got, tt.want)
		}
	}
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Limiter state stays bounded however many distinct client ids and
// addresses callers make up: 100 client ids of 500 KB (50 MB that the
// old per-client_id map kept for good) and 100,000 short ones from 100,000
// addresses leave the live heap where it was.
func TestRateLimiterMemoryBounded(t *testing.T) {
	r := newAuthRig(t, store.New(env.Pool, env.Ring, canopy.Events{}), nil)
	r.contract = nil // 100,000 contract checks would take minutes under -race
	before := heapAfterGC()
	big := strings.Repeat("a", 500_000)
	for i := range 100 {
		r.token("192.0.2.1", fmt.Sprintf("cli_%d%s", i, big), "sk_x")
	}
	// Past the cap (so eviction is exercised) through the whole handler;
	// TestRateLimiterEntriesBounded drives 100,000 keys into a limiter
	// directly, which is what 100,000 distinct ids cost here too.
	for i := range maxLimiterEntries + 5_000 {
		rec := r.token(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String(), "cli_bogus_"+strconv.Itoa(i), "sk_x")
		if rec.Code != 401 {
			t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body.Bytes())
		}
	}
	after := heapAfterGC()
	growth := int64(after) - int64(before)
	t.Logf("live heap %d KiB before, %d KiB after (%+d KiB); %d source entries", before>>10, after>>10, growth>>10, r.api.sourceFailures.len())
	if growth > 16<<20 {
		t.Errorf("live heap grew by %d MiB", growth>>20)
	}
	if n := r.api.sourceFailures.len(); n > maxLimiterEntries {
		t.Errorf("%d source entries, cap %d", n, maxLimiterEntries)
	}
}

// Each keyed limiter holds at most its cap of entries, and drops entries
// whose bucket has refilled.
func TestRateLimiterEntriesBounded(t *testing.T) {
	l := newKeyedLimiter(1000, 2, 1000)
	before := heapAfterGC()
	for i := range 100_000 {
		l.charge(store.NewID("cli_") + " 192.0.2." + strconv.Itoa(i%256))
	}
	if n := l.len(); n != 1000 {
		t.Errorf("%d entries, want the cap 1000", n)
	}
	if growth := int64(heapAfterGC()) - int64(before); growth > 4<<20 {
		t.Errorf("live heap grew by %d KiB", growth>>10)
	}
	time.Sleep(l.idle)
	l.charge("fresh")
	if n := l.len(); n != 1 {
		t.Errorf("%d entries after every bucket refilled, want 1", n)
	}
	// A blocked key stays blocked until its bucket refills.
	k := newKeyedLimiter(0.5, 2, 10)
	k.charge("a")
	k.charge("a")
	if ra, blocked := k.blocked("a"); !blocked || ra < 1 || ra > 2 {
		t.Errorf("blocked = %d, %v after the burst", ra, blocked)
	}
	if _, blocked := k.blocked("b"); blocked || k.len() != 1 {
		t.Errorf("an unknown key is blocked or got an entry")
	}
}

// waitRevoked polls a route with token until it answers 401, and says how
// long that took; it fails the test after limit.
func (h *harness) waitRevoked(path, token string, limit time.Duration) time.Duration {
	h.t.Helper()
	start := time.Now()
	for {
		res := h.do("GET", path, token, nil)
		if res.status == 401 {
			res.wantError(401, codeUnauthorized)
			return time.Since(start)
		}
		res.wantStatus(200)
		if time.Since(start) > limit {
			h.t.Fatalf("token still accepted %s after revocation", limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Disabling a client, changing its role and rotating its secret revoke its
// tokens within the client cache's TTL (3 s by default).
func TestClientRevocationThroughAPI(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	path := "/accounts/" + h.account()
	id, secret := h.client(h.org, auth.RoleServicing)
	tokenOf := func(id, secret string) string {
		return h.do("POST", "/auth/token", "", map[string]string{"client_id": id, "client_secret": secret}).wantStatus(200).str("access_token")
	}
	tok := tokenOf(id, secret)
	h.do("GET", path, tok, nil).wantStatus(200)

	// Disable: the token stops working; so does asking for a new one.
	if _, err := h.store.DisableClient(ctx, id); err != nil {
		t.Fatal(err)
	}
	took := h.waitRevoked(path, tok, defaultClientCacheTTL+2*time.Second)
	t.Logf("disable: token refused after %s", took.Round(10*time.Millisecond))
	h.do("POST", "/auth/token", "", map[string]string{"client_id": id, "client_secret": secret}).wantError(401, codeUnauthorized)

	// Enable: the old token stays revoked, a new one works.
	if _, err := h.store.EnableClient(ctx, id); err != nil {
		t.Fatal(err)
	}
	time.Sleep(defaultClientCacheTTL)
	h.do("GET", path, tok, nil).wantError(401, codeUnauthorized)
	tok = tokenOf(id, secret)
	h.do("POST", "/accounts", tok, map[string]any{"product_id": "p"}).wantStatus(200)

	// Role change: the servicing token goes; a new token has the new role.
	if _, err := h.store.SetClientRole(ctx, id, auth.RoleReadonly); err != nil {
		t.Fatal(err)
	}
	took = h.waitRevoked(path, tok, defaultClientCacheTTL+2*time.Second)
	t.Logf("set-role: token refused after %s", took.Round(10*time.Millisecond))
	tok = tokenOf(id, secret)
	h.do("GET", path, tok, nil).wantStatus(200)
	h.do("POST", "/accounts", tok, map[string]any{"product_id": "p"}).wantError(403, codeForbidden)

	// Secret rotation: the token and the old secret go, the new secret works.
	newSecret, _ := auth.NewSecret()
	hash, _ := auth.HashSecret(newSecret)
	if _, err := h.store.SetClientSecret(ctx, id, hash); err != nil {
		t.Fatal(err)
	}
	took = h.waitRevoked(path, tok, defaultClientCacheTTL+2*time.Second)
	t.Logf("rotate-secret: token refused after %s", took.Round(10*time.Millisecond))
	h.do("POST", "/auth/token", "", map[string]string{"client_id": id, "client_secret": secret}).wantError(401, codeUnauthorized)
	h.do("GET", path, tokenOf(id, newSecret), nil).wantStatus(200)

	// A token whose client does not exist (signed with our key) is refused.
	signer, _ := auth.NewSigner(testSigningKey, time.Hour)
	ghost, _ := signer.Issue(auth.Claims{OrgID: h.org, ClientID: store.NewID("cli_"), Role: auth.RoleAdmin, Version: 1})
	h.do("GET", path, ghost, nil).wantError(401, codeUnauthorized)
}
