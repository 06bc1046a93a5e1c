package anetsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"
)

// Credentials the simulator accepts when none are configured; payrail dev
// uses the same defaults, so the two meet without configuration.
const (
	DefaultLoginID        = "payrail-sim"
	DefaultTransactionKey = "SimTransKey0001"
)

// Path is where the API listens, as on apitest.authorize.net.
const Path = "/xml/v1/request.api"

// maxBody bounds a request body; real requests are a few kilobytes.
const maxBody = 1 << 20

// Options configures a Server. The zero value is usable.
type Options struct {
	// LoginID and TransactionKey are the default merchant's credentials.
	// Default DefaultLoginID / DefaultTransactionKey.
	LoginID        string
	TransactionKey string
	// Merchants are further merchant logins (login id → transaction key),
	// each with its own customer profiles and transactions. Requests with
	// any other credentials are answered E00007. AddMerchant adds more.
	Merchants map[string]string
	// Now is the simulator's clock (submit times, duplicate window, card
	// expiry, settlement). Default time.Now.
	Now func() time.Time
	// Faults is random misbehaviour; Inject queues deterministic faults.
	Faults Faults
	// Seed makes the random faults reproducible; 0 draws a random seed.
	Seed uint64
	// MaxHang bounds a hang fault. Default 10 minutes.
	MaxHang time.Duration
	// AcceptAnyProfile charges an unknown customer payment profile as a
	// Visa ending 1111 instead of answering E00040, so payrail dev can
	// charge whatever profile ids an account's config names.
	AcceptAnyProfile bool
	// ReportingOff answers every Transaction Details API call
	// (getTransactionDetails, the transaction and batch lists) with
	// E00011, as for a merchant who has not enabled that API in the
	// Merchant Interface. SetReporting sets it per merchant login.
	ReportingOff bool
	// OmitTotal leaves totalNumInResultSet out of transaction lists (the
	// XSD makes it optional, minOccurs 0); a client must then page until
	// a short page.
	OmitTotal bool
	// FirstTransID is the transaction id before the first one issued.
	// Default 60000000000.
	FirstTransID int64
	// Logger receives one debug line per request; never card data.
	// Default: discard.
	Logger *slog.Logger
}

// Server simulates the Authorize.Net JSON API sandbox. It is an
// http.Handler, safe for concurrent use, and keeps everything in memory.
type Server struct {
	opts Options
	val  *validator
	log  *slog.Logger

	closeOnce sync.Once
	closed    chan struct{}

	mu        sync.Mutex
	rng       *rand.Rand
	faults    Faults
	queue     []scripted
	requests  map[string]int
	txns      []*Transaction
	byID      map[string]*Transaction
	byKey     map[string]*Transaction // newest transaction per duplicate key
	nextID    int64
	batches   []batch
	nextBatch int64
	merchants map[string]string
	profiles  map[profileKey]Profile
	byLogin   map[[2]string]int // (login, method) → requests
	// reportingOff are logins whose Transaction Details API is off.
	reportingOff map[string]bool
	nextProf     int64
}

// New returns a simulator. It fails only if the embedded schema does not
// parse.
func New(opts Options) (*Server, error) {
	if opts.LoginID == "" {
		opts.LoginID = DefaultLoginID
	}
	if opts.TransactionKey == "" {
		opts.TransactionKey = DefaultTransactionKey
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxHang <= 0 {
		opts.MaxHang = 10 * time.Minute
	}
	if opts.FirstTransID <= 0 {
		opts.FirstTransID = 60000000000
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	merchants := map[string]string{opts.LoginID: opts.TransactionKey}
	for login, key := range opts.Merchants {
		merchants[login] = key
	}
	sch, err := parseSchema(schemaXSD)
	if err != nil {
		return nil, err
	}
	return &Server{
		opts:         opts,
		val:          newValidator(sch),
		log:          log,
		closed:       make(chan struct{}),
		rng:          newRand(opts.Seed),
		faults:       opts.Faults,
		requests:     map[string]int{},
		byID:         map[string]*Transaction{},
		byKey:        map[string]*Transaction{},
		nextID:       opts.FirstTransID,
		merchants:    merchants,
		profiles:     map[profileKey]Profile{},
		byLogin:      map[[2]string]int{},
		reportingOff: map[string]bool{},
		nextProf:     500000000,
	}, nil
}

// Inject queues faults for the next requests to method (an API method
// such as "createTransactionRequest", or "" for any). Each request takes
// the first queued fault that matches it; queued faults win over the
// random ones.
func (s *Server) Inject(method string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range faults {
		s.queue = append(s.queue, scripted{method: method, fault: f})
	}
}

// SetFaults replaces the random faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Close releases requests hung by a fault. The Server answers no request
// normally afterwards (hang faults return at once).
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// Serve answers on ln until ctx ends, then drains for up to 5 seconds.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle(Path, s)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("POST "+SettlePath, s.serveSettle)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("anetsim: serve: %w", err)
	case <-ctx.Done():
	}
	s.Close()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("anetsim: shutdown: %w", err)
	}
	return nil
}

// ServeHTTP answers one API call: schema check, faults, authentication,
// then the method.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return // the client went away
	}
	if len(body) > maxBody {
		s.writeJSON(w, errorReply("", "E00003", "The request is too large."))
		return
	}
	body = trimBOM(body)

	root, err := parseOrdered(body)
	method := ""
	if err == nil {
		method, err = s.val.validate(root)
	}
	s.mu.Lock()
	s.requests[method]++
	fault := s.pickFault(method)
	s.mu.Unlock()

	if !fault.after() && s.strike(fault, w, r) {
		s.log.Debug("anetsim: fault", "method", method, "fault", fault.String())
		return
	}
	var reply any
	switch {
	case errors.Is(err, errUnknownMethod):
		reply = errorReply("", "E00004", "The name of the requested API method is invalid.")
	case err != nil:
		reply = errorReply("", "E00003", err.Error())
	default:
		reply = s.dispatch(method, body)
	}
	if d := s.delay(); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		case <-s.closed:
		}
	}
	if s.strike(fault, w, r) {
		s.log.Debug("anetsim: fault", "method", method, "fault", fault.String())
		return
	}
	s.writeJSON(w, reply)
}
