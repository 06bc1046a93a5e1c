package authorizenet

import (
	"strings"
	"testing"
	"time"

	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
	"github.com/payrail/payrail/processors/processortest"
)

// contractEnv is the processor wired to a fresh simulator, as the other
// tests wire it (newEnv), with a short client timeout so hang faults end
// quickly.
type contractEnv struct{ e *env }

func (c contractEnv) Processor() processors.Processor { return c.e.proc }

func (c contractEnv) Job(t *testing.T, attemptID string) processors.Job {
	return cardJob(c.e, attemptID, 2_345, visa())
}

// Effects counts the charges (approved or held) the simulator recorded
// for the job's payment: under its invoice number, or naming its line
// item (a charge under another invoice would be a second charge too).
func (c contractEnv) Effects(t *testing.T, job processors.Job) int {
	inv, desc := InvoiceNumber(job.AttemptID), "payrail line item "+job.LineItemID
	n := 0
	for _, tx := range c.e.sim.Transactions() {
		if tx.Charged() && (tx.InvoiceNumber == inv || tx.Description == desc) {
			n++
		}
	}
	return n
}

func sim(env processortest.Env) *anetsim.Server { return env.(contractEnv).e.sim }

// inject is a failure the simulator causes on the next charge request.
func inject(fault anetsim.Fault) processortest.Failure {
	return processortest.Failure{
		Name: fault.String(),
		Arm: func(t *testing.T, env processortest.Env, job processors.Job) processors.Job {
			sim(env).Inject("createTransactionRequest", fault)
			return job
		},
	}
}

// refuse is a permanent failure: the job with its card changed by edit.
func refuse(name string, edit func(*processors.CardDetails)) processortest.Failure {
	return processortest.Failure{
		Name: name,
		Arm: func(t *testing.T, env processortest.Env, job processors.Job) processors.Job {
			c := *job.Card
			edit(&c)
			job.Card = &c
			return job
		},
	}
}

func TestContract(t *testing.T) {
	processortest.Run(t, processortest.Harness{
		Setup: func(t *testing.T) processortest.Env {
			return contractEnv{newEnv(t, envOptions{timeout: time.Second})}
		},
		Want:          processors.Succeeded,
		TransactionID: true,
		// Faults before the gateway processed anything: 503, a reset
		// connection, no answer until the client's timeout.
		Transient: []processortest.Failure{
			inject(anetsim.FaultStatus5xx), inject(anetsim.FaultDrop), inject(anetsim.FaultHang),
		},
		// The same faults after the gateway charged.
		Unknown: []processortest.Failure{
			inject(anetsim.FaultStatus5xxAfter), inject(anetsim.FaultDropAfter), inject(anetsim.FaultHangAfter),
		},
		Permanent: []processortest.Failure{
			refuse("expired card", func(c *processors.CardDetails) { c.ExpirationDate = "01/20" }),
			refuse("card number fails Luhn", func(c *processors.CardDetails) { c.Number = "4111111111111112" }),
			refuse("card number too long to send", func(c *processors.CardDetails) { c.Number = strings.Repeat("4", 19) }),
			refuse("malformed expiration date", func(c *processors.CardDetails) { c.ExpirationDate = "2035-12" }),
		},
	})
}
