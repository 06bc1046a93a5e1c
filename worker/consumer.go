package worker

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/payrail/payrail/internal/queue"
)

// consumerOptions size a processor's durable consumer. MaxAckPending is
// consumer-wide: room for the buffers and jobs in flight of a few dozen
// workers before JetStream holds back.
func (w *Worker) consumerOptions() queue.ConsumerOptions {
	return queue.ConsumerOptions{AckWait: w.opts.AckWait, MaxDeliver: w.opts.MaxDeliver,
		MaxAckPending: max(1000, 64*w.opts.Concurrency)}
}

// consumerGone reports whether err says the consumer or its stream no
// longer exists.
func consumerGone(err error) bool {
	if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound) {
		return true
	}
	var api *jetstream.APIError
	return errors.As(err, &api) &&
		(api.ErrorCode == jetstream.JSErrCodeStreamNotFound || api.ErrorCode == jetstream.JSErrCodeConsumerNotFound)
}

// watchConsumer checks every ConsumerCheck that cons still exists, and
// calls restart when it does not. A broker that lost its store (or a
// deleted stream) leaves a pull that only reports missing heartbeats:
// nothing else would notice.
func (w *Worker) watchConsumer(ctx context.Context, processor string, cons jetstream.Consumer, restart func()) {
	t := time.NewTicker(w.opts.ConsumerCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cons.Info(callCtx)
		cancel()
		if err != nil && consumerGone(err) && ctx.Err() == nil {
			w.log.Warn("jobs consumer or stream missing; recreating them", "processor", processor, "err", err)
			restart()
			return
		}
	}
}

// recreateConsumer ensures the streams and the processor's consumer,
// retrying until it succeeds or ctx ends.
func (w *Worker) recreateConsumer(ctx context.Context, processor string) (jetstream.Consumer, error) {
	for attempt := 1; ; attempt++ {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := queue.Ensure(callCtx, w.js, w.topo)
		var cons jetstream.Consumer
		if err == nil {
			cons, err = queue.EnsureWorkerConsumer(callCtx, w.js, w.topo, processor, w.consumerOptions())
		}
		cancel()
		if err == nil {
			w.log.Info("jobs consumer recreated; pulling again", "processor", processor)
			return cons, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if attempt == 1 || attempt%10 == 0 {
			w.log.Warn("could not recreate the jobs consumer; retrying", "processor", processor, "attempt", attempt, "err", err)
		}
		sleep(ctx, min(time.Duration(attempt)*500*time.Millisecond, 5*time.Second))
	}
}
