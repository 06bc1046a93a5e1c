// Command payrail runs the payrail payment-execution service: the API and
// the operator tools, chosen by subcommand (see usage).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
  payrail webhooks [flags]   deliver line item events to subscribed webhook endpoints
  payrail migrate  [flags]   apply the embedded schema migrations
  payrail nacha drop [--json]            run one NACHA cutoff now
  payrail nacha returns [--json] FILE... ingest NACHA return / NOC files
  payrail nacha settle [--json]          settle entries whose return window passed
  payrail events [--status S] [--follow]  print line item events from the events stream
  payrail payments list|show|redrive ...  find dead, held and stuck payments; show one; redrive a dead attempt
  payrail anetsim  [flags]   the Authorize.Net simulator, standalone
  payrail bench    [flags]   measure: drive guest payments at a running payrail (--url) or an in-process one (--dev)
  payrail clients create --org ORG --name NAME [--role ROLE] [--create-org] [--json]
                             create an API client; prints its secret once
  payrail version [--json]   the version, commit and Go version of this binary
  payrail clients list|disable|enable|rotate-secret|set-role ...
                             manage API clients ("payrail clients" for usage)

Run "payrail COMMAND -h" for a command's flags. Every setting has a PAYRAIL_*
environment variable; see README.md.
`

// command is one subcommand and the function that runs it.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

// commands is the dispatch table of run. It is filled in init: the
// runners look their summaries up in it.
var commands []command

func init() {
	commands = []command{
		{"dev", "Everything in one process for a laptop: API, relay, worker and webhooks, with embedded NATS.", runDev},
		{"api", "The HTTP API, its fast-path publisher and (unless PAYRAIL_API_RELAY=false) a relay.", runAPI},
		{"worker", "Execute payment jobs: one consumer per processor, and the NACHA schedule.", runWorker},
		{"relay", "Publish outbox rows the fast path missed.", runRelay},
		{"webhooks", "Deliver line item events to each org's subscribed webhook endpoint (retries, dead letters, pauses).", runWebhooks},
		{"migrate", "Apply the embedded schema migrations.", runMigrate},
		{"clients", "Manage API clients.", runClients},
		{"anetsim", "The Authorize.Net simulator, standalone.", runAnetsim},
		{"bench", "Drive guest payments at a running payrail (--url) or at an in-process stack on a temporary database (--dev) and measure them.", runBench},
		{"nacha", "NACHA operator commands: drop, returns, settle, simulate-return.", runNacha},
		{"events", "Print line item events from the events stream.", runEvents},
		{"payments", "Operator commands for payments: list attempts by status, show one, redrive a dead attempt.", runPayments},
		{"version", "The version, commit and Go version of this binary.", runVersion},
	}
}

func lookupCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func commandSummary(name string) string {
	c, _ := lookupCommand(name)
	return c.summary
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := exitCode(run(ctx, os.Args[1:]), os.Stderr)
	stop()
	os.Exit(code)
}

// exitCode reports err on w and returns the process's exit status: 0 for
// success and for help asked for, 2 for anything else. A configuration
// error is one line per problem.
func exitCode(err error, w io.Writer) int {
	var ce *configError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
	case errors.As(err, &ce):
		for _, p := range ce.problems {
			fmt.Fprintln(w, "payrail:", p)
		}
	default:
		fmt.Fprintln(w, "payrail:", err)
	}
	return 2
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return nil
	}
	c, ok := lookupCommand(args[0])
	if !ok {
		fmt.Fprintf(os.Stderr, "payrail: unknown command %q\n\n%s", args[0], usage)
		return errUsage
	}
	return c.run(ctx, args[1:])
}
