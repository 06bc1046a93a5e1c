package worker

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors/nacha"
)

// ACH guest payments go through the whole pipeline to the CANOPY_NACHA
// processor: each is staged (PENDING, with an event saying so), then a
// drop puts them in one NACHA file whose totals match, stamps each attempt
// with the file and trace number, and announces it.
func TestACHPaymentsStagedAndDropped(t *testing.T) {
	dir := t.TempDir()
	p, err := nacha.New(nacha.Config{Pool: env.Pool, Ring: env.Ring, Ledger: nacha.StoreLedger{Store: store.New(env.Pool, env.Ring, canopy.Events{})},
		DropDir: dir, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, fixtureOpts{processor: p})
	if _, err := f.store.PutNachaConfig(f.ctx, f.org, store.NachaConfig{
		DestinationBankName: "FEDERAL RESERVE BANK", DestinationRouting: "091000019",
		OriginBankName: "PAYRAIL TEST BANK", OriginRouting: "231380104",
		CompanyName: "PAYRAIL TEST", CompanyIdentification: "1234567890", EntryDescription: "PAYMENT",
	}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	var total int64
	for i := range 3 {
		id := fmt.Sprintf("ach-%d", i)
		cents := int64(1000 * (i + 1))
		total += cents
		f.guestPayment(id, cents, fmt.Sprintf(`{"payment_type":"ACH","payment_processor_name":"CANOPY_NACHA",`+
			`"bank_account_number":"98765432%d","bank_routing_number":"021000021","standard_entry_class":"WEB","name":"Pat Doe"}`, i))
		ids = append(ids, id)
	}
	for _, id := range ids {
		var li store.LineItem
		waitFor(t, 10*time.Second, func() bool {
			li, _ = f.store.LineItem(f.ctx, f.org, f.account, id)
			return li.Attempt != nil && li.Attempt.Status == store.AttemptPendingSettlement
		}, func() string { return fmt.Sprintf("%s not staged: %+v", id, li.Attempt) })
		if li.Status != store.StatusPending || li.Attempt.InstrumentKind != "bank_account" || li.Attempt.InstrumentLastFour == "" {
			t.Errorf("%s staged as %s with instrument %+v", id, li.Status, li.Attempt)
		}
	}
	// Creation and staging: two PENDING events per payment.
	waitFor(t, 5*time.Second, func() bool { return f.eventCounts()[f.topo.EventSubject("PENDING")] == 6 },
		func() string { return fmt.Sprint(f.eventCounts()) })

	res, err := p.Drop(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var mine *nacha.FileSummary
	for i := range res.Files {
		if res.Files[i].OrgID == f.org {
			mine = &res.Files[i]
		}
	}
	if mine == nil || mine.Entries != 3 || mine.DebitTotalCents != total {
		t.Fatalf("drop = %+v, want one file of 3 entries totalling %d", res, total)
	}
	content, err := os.ReadFile(mine.Path)
	if err != nil || len(content) == 0 {
		t.Fatalf("dropped file: %v", err)
	}
	for _, id := range ids {
		li, _ := f.store.LineItem(f.ctx, f.org, f.account, id)
		if li.Status != store.StatusPending || li.Attempt.NachaFileID != mine.FileID || li.Attempt.TraceNumber == "" {
			t.Errorf("%s after the drop: %s, attempt %+v", id, li.Status, li.Attempt)
		}
		if !strings.Contains(string(content), li.Attempt.TraceNumber) {
			t.Errorf("%s: trace %s not in the file", id, li.Attempt.TraceNumber)
		}
	}
	// The drop's announcements reach the stream through the relay.
	waitFor(t, 10*time.Second, func() bool { return f.eventCounts()[f.topo.EventSubject("PENDING")] == 9 },
		func() string { return fmt.Sprint(f.eventCounts()) })
}
