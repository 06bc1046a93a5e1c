// Command payrail runs the payrail payment-execution service: the API and
// the operator tools, chosen by subcommand (see usage).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	// The NACHA cutoff calendar loads America/New_York (or the configured
	// zone); embedding the zone database makes the binary work on images
	// without one (scratch, distroless).
	_ "time/tzdata"
)

const usage = `payrail: asynchronous payment execution behind a Canopy-compatible API

Usage:
  payrail dev      [flags]   everything in one process, with embedded NATS
  payrail api      [flags]   the HTTP API, its fast-path publisher and a relay
  payrail worker   [flags]   execute payment jobs (one consumer per processor)
  payrail relay    [flags]   publish outbox rows the fast path missed
  payrail migrate  [flags]   apply the embedded schema migrations
  payrail nacha drop [--json]            run one NACHA cutoff now
  payrail nacha returns [--json] FILE... ingest NACHA return / NOC files
  payrail nacha settle [--json]          settle entries whose return window passed
  payrail events [--status S] [--follow]  print line item events from the events stream
  payrail anetsim  [flags]   the Authorize.Net simulator, standalone
  payrail clients create --org ORG --name NAME [--role ROLE] [--create-org] [--json]
                             create an API client; prints its secret once
  payrail clients list|disable|enable|rotate-secret|set-role ...
                             manage API clients ("payrail clients" for usage)

Run "payrail COMMAND -h" for a command's flags. Every flag has a PAYRAIL_*
environment variable; see README.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "payrail:", err)
		}
		os.Exit(2)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "dev":
		return runDev(ctx, args[1:])
	case "api":
		return runAPI(ctx, args[1:])
	case "worker":
		return runWorker(ctx, args[1:])
	case "relay":
		return runRelay(ctx, args[1:])
	case "migrate":
		return runMigrate(ctx, args[1:])
	case "clients":
		return runClients(ctx, args[1:])
	case "anetsim":
		return runAnetsim(ctx, args[1:])
	case "nacha":
		return runNacha(ctx, args[1:])
	case "events":
		return runEvents(ctx, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprintf(os.Stderr, "payrail: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}
