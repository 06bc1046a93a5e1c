package authorizenet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

// totalNumInResultSet is optional (minOccurs 0). Without it the lookup
// must page on until a short page: stopping after the first full page
// would miss an earlier delivery's charge further down the list and
// charge the card a second time once the duplicate window is over.
func TestLookupPagesWithoutTotal(t *testing.T) {
	e := newEnv(t, envOptions{sim: anetsim.Options{OmitTotal: true}})
	e.proc.pageSize = 2
	job := cardJob(e, "att_page_nototal", 5100, visa())
	if res, err := e.proc.Process(context.Background(), job); err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("first charge = %+v, %v", res, err)
	}
	// Newer transactions push the attempt's onto page 3 (newest first).
	for i := range 5 {
		e.clock.Advance(time.Second)
		other := cardJob(e, fmt.Sprintf("att_page_other_%d", i), 100+int64(i), visa())
		if res, err := e.proc.Process(context.Background(), other); err != nil || res.Outcome != processors.Succeeded {
			t.Fatalf("other charge %d = %+v, %v", i, res, err)
		}
	}
	// Outside the duplicate window only the lookup stands between the
	// redelivery and a second charge.
	e.clock.Advance(9 * time.Hour)
	res, found, err := e.proc.lookup(context.Background(), job, InvoiceNumber(job.AttemptID), instrumentOf(job))
	if err != nil || !found || res.Outcome != processors.Succeeded {
		t.Fatalf("lookup without totalNumInResultSet = %+v, found %v, %v; want the earlier charge", res, found, err)
	}
	res, err = e.proc.Process(context.Background(), redelivered(job, true))
	if err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("redelivery = %+v, %v", res, err)
	}
	if n := e.sim.Charges(InvoiceNumber(job.AttemptID)); n != 1 {
		t.Fatalf("charges = %d, want 1", n)
	}
}

// The simulator leaves the field out only when asked.
func TestListTotalPresentByDefault(t *testing.T) {
	e := newEnv(t, envOptions{})
	if _, err := e.proc.Process(context.Background(), cardJob(e, "att_total", 700, visa())); err != nil {
		t.Fatal(err)
	}
	list, err := e.client.GetUnsettledTransactionList(context.Background(), ListOptions{Paging: &Paging{Limit: 1, Offset: 1}})
	if err != nil || list.Total == nil || *list.Total != 1 {
		t.Fatalf("list = %+v, %v; want totalNumInResultSet 1", list, err)
	}
}
