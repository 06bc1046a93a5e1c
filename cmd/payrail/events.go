package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/payrail/payrail/internal/queue"
)

// runEvents prints line item events from the events stream: the last ones,
// or (with --follow) new ones as they come. An ordered consumer reads the
// stream without leaving anything behind on the server.
func runEvents(ctx context.Context, args []string) error {
	cl := newCmdline("events", roleEvents, os.LookupEnv)
	cl.summary = "Print line item events from the events stream."
	fs, cfg := cl.fs, cl.cfg
	since := fs.Duration("since", 24*time.Hour, "print events newer than this")
	status := fs.String("status", "", "only events of this line item status (e.g. declined)")
	follow := fs.Bool("follow", false, "keep printing new events until interrupted")
	if err := cl.parse(args); err != nil {
		return err
	}
	url := cfg.NATSURL
	if url == "" {
		// Beside payrail dev: its embedded server's address is in var.
		b, err := os.ReadFile(filepath.Join(cfg.VarDir, "nats.url"))
		if err != nil {
			url = cfg.natsURLOrDefault()
		} else {
			url = strings.TrimSpace(string(b))
		}
	}
	nc, err := nats.Connect(url, nats.Name("payrail-events"))
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	topo := queue.Topology{SubjectRoot: cfg.SubjectRoot}
	filter := topo.EventSubjects()
	if *status != "" {
		filter = topo.EventSubject(*status)
	}
	start := time.Now().Add(-*since)
	cons, err := js.OrderedConsumer(ctx, cfg.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start,
	})
	if err != nil {
		return fmt.Errorf("read stream %s: %w", cfg.EventsStream, err)
	}
	for {
		wait := 2 * time.Second
		if *follow {
			wait = time.Hour
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(wait))
		switch {
		case errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout):
			if !*follow {
				return nil
			}
			continue
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return err
		}
		fmt.Printf("%s %s\n", msg.Subject(), msg.Data())
	}
}
