package testenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// connectNATS connects once, without retries: the callers retry, or fail.
func connectNATS(url string) (*nats.Conn, error) {
	return nats.Connect(url,
		nats.Name("payrail testenv"),
		nats.Timeout(5*time.Second),
		nats.NoReconnect(),
	)
}

// checkNATS connects to the server at url and asks JetStream for the
// account's limits, which fails where JetStream is off. With wantServer
// set, the server must carry that name.
func checkNATS(ctx context.Context, url, wantServer string) error {
	nc, err := connectNATS(url)
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	if wantServer != "" && nc.ConnectedServerName() != wantServer {
		return fmt.Errorf("NATS server at %s is %q, not %q", nc.ConnectedUrlRedacted(), nc.ConnectedServerName(), wantServer)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("NATS JetStream: %w", err)
	}
	return nil
}

// deleteStreams deletes the streams on the server at url whose names end in
// suffix.
func deleteStreams(url, suffix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := connectNATS(url)
	if err != nil {
		return fmt.Errorf("delete test streams: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("delete test streams: %w", err)
	}
	var mine []string
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		if strings.HasSuffix(name, suffix) {
			mine = append(mine, name)
		}
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("list streams: %w", err)
	}
	var errs []error
	for _, name := range mine {
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("delete stream %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
