package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/common/expfmt"
)

// testPAN is the card every pipeline test pays with.
const testPAN = "4111111111111111"

// No full card number or CVV appears in the logs, events, metrics or
// anywhere in PostgreSQL after payments of every outcome went through the
// pipeline (docs/security.md).
func TestNoCardDataEscapes(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	var ids []string
	for i, cents := range []int64{1000, 1000 + centsDecline, 1000 + centsPermanent, 1000 + centsRetryable, 1000 + centsHeld} {
		id := fmt.Sprintf("secret-%d", i)
		f.pay(id, cents)
		ids = append(ids, id)
	}
	f.waitSettled(ids, 20*time.Second)
	time.Sleep(300 * time.Millisecond) // let the last events and log lines out

	// Logs, with debug lines included.
	if logs := f.logs.String(); strings.Contains(logs, testPAN) || strings.Contains(strings.ToLower(logs), `"cvv"`) {
		t.Errorf("card data in the logs")
	} else if !strings.Contains(logs, "attempt_id") {
		t.Fatalf("the log buffer caught nothing; the check would prove nothing")
	}

	// Events on the stream.
	cons, err := f.js.OrderedConsumer(f.ctx, f.topo.Events, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(100)
	if err != nil {
		t.Fatal(err)
	}
	events := 0
	for m := range batch.Messages() {
		events++
		if bytes.Contains(m.Data(), []byte(testPAN)) || bytes.Contains(bytes.ToLower(m.Data()), []byte(`"cvv"`)) {
			t.Errorf("card data in event %s", m.Subject())
		}
		// Decoded, not searched as text: events of NACHA drops and
		// settlements are rendered by PostgreSQL (jsonb spacing), the
		// others by Go.
		var ev struct {
			LineItem struct {
				PaymentProcessing struct {
					Instrument struct {
						LastFour string `json:"last_four"`
					} `json:"instrument"`
				} `json:"payment_processing"`
			} `json:"line_item"`
		}
		if err := json.Unmarshal(m.Data(), &ev); err != nil || ev.LineItem.PaymentProcessing.Instrument.LastFour != "1111" {
			t.Errorf("event %s lacks the masked instrument (%v): %s", m.Subject(), err, m.Data())
		}
	}
	if events < 10 {
		t.Fatalf("read %d events, want at least 10 (one creation and one outcome per payment)", events)
	}

	// Metrics.
	families, err := f.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(text.String(), testPAN) {
		t.Errorf("card number in metrics")
	}

	// Every table, every row, as text (bytea in hex would hide nothing
	// readable, so the clear number must not be there in any encoding).
	rows, err := env.Pool.Query(context.Background(), `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	for _, table := range tables {
		var hits int
		err := env.Pool.QueryRow(context.Background(),
			fmt.Sprintf(`SELECT count(*) FROM %q t WHERE t::text LIKE '%%' || $1 || '%%'
			   OR t::text LIKE '%%' || encode(convert_to($1, 'UTF8'), 'hex') || '%%'`, table), testPAN).Scan(&hits)
		if err != nil {
			t.Fatalf("search %s: %v", table, err)
		}
		if hits > 0 {
			t.Errorf("card number in clear in %d rows of %s", hits, table)
		}
	}
	var lastFour int
	if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM payment_attempts
		WHERE org_id = $1 AND instrument_last_four = '1111' AND instrument_brand = 'Visa'`, f.org).Scan(&lastFour); err != nil {
		t.Fatal(err)
	}
	if lastFour != len(ids) {
		t.Errorf("%d attempts keep last four and brand, want %d", lastFour, len(ids))
	}
}
