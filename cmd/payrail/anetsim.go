package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

// runAnetsim runs the Authorize.Net simulator standalone: point
// PAYRAIL_AUTHNET_ENDPOINT at http://ADDR/xml/v1/request.api.
func runAnetsim(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("anetsim", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8099", "listen address")
	// The defaults are resolved after parsing so that help never shows a
	// transaction key taken from the environment.
	login := fs.String("login-id", "", "API login ID the simulator accepts (PAYRAIL_AUTHNET_LOGIN_ID; default the simulator's own)")
	key := fs.String("transaction-key", "", "transaction key the simulator accepts (PAYRAIL_AUTHNET_TRANSACTION_KEY; default the simulator's own)")
	anyProfile := fs.Bool("any-profile", true, "charge unknown customer payment profiles as a Visa ending 1111 instead of answering E00040")
	latency := fs.Duration("latency", 0, "delay every answer by this much")
	jitter := fs.Duration("latency-jitter", 0, "add a random delay up to this much")
	errorRate := fs.Float64("error-rate", 0, "share of requests answered with HTTP 5xx (half of them after processing)")
	hangRate := fs.Float64("hang-rate", 0, "share of requests never answered (half of them after processing)")
	dropRate := fs.Float64("drop-rate", 0, "share of connections reset (half of them after processing)")
	reportingOff := fs.Bool("reporting-off", false, "answer every Transaction Details API call (transaction details and lists) with E00011, as for a merchant who has not enabled that API")
	seed := fs.Uint64("seed", 0, "seed for the random faults; 0 picks one")
	verbose := fs.Bool("v", false, "log every request (never card data)")
	merchants := map[string]string{}
	fs.Func("merchant", "another merchant login the simulator accepts, as LOGIN=KEY (repeatable); each has its own profiles and transactions",
		func(v string) error {
			login, key, ok := strings.Cut(v, "=")
			if !ok || login == "" || key == "" {
				return fmt.Errorf("want LOGIN=KEY")
			}
			merchants[login] = key
			return nil
		})
	if err := parseFlags(fs, args, nil); err != nil {
		return err
	}
	if *login == "" {
		*login = env("PAYRAIL_AUTHNET_LOGIN_ID", anetsim.DefaultLoginID)
	}
	if *key == "" {
		*key = env("PAYRAIL_AUTHNET_TRANSACTION_KEY", anetsim.DefaultTransactionKey)
	}
	for name, r := range map[string]float64{"--error-rate": *errorRate, "--hang-rate": *hangRate, "--drop-rate": *dropRate} {
		if r < 0 || r > 1 {
			return fmt.Errorf("anetsim: %s must be between 0 and 1, got %v", name, r)
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	sim, err := anetsim.New(anetsim.Options{
		LoginID:          *login,
		TransactionKey:   *key,
		Merchants:        merchants,
		AcceptAnyProfile: *anyProfile,
		ReportingOff:     *reportingOff,
		Seed:             *seed,
		Logger:           log,
		Faults: anetsim.Faults{
			Latency: *latency, Jitter: *jitter,
			ErrorRate: *errorRate, HangRate: *hangRate, DropRate: *dropRate,
		},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("anetsim: listen on %s: %w", *addr, err)
	}
	log.Info("Authorize.Net simulator listening",
		"endpoint", "http://"+ln.Addr().String()+anetsim.Path, "login_id", *login)
	return sim.Serve(ctx, ln)
}
