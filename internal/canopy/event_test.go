package canopy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/store"
)

// An event's type, subject, header and previous status follow from the
// change: created (previous_status null), status changed, or only the
// processing moved on.
func TestEvents(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	li := store.LineItem{AccountID: "a", LineItemID: "li_1", Type: store.TypePayment, Status: store.StatusPending,
		AmountCents: 500, Attempt: &store.Attempt{AttemptID: "att_1", Status: store.AttemptHeld}}
	for _, c := range []struct {
		name     string
		from     store.Status
		wantType string
		wantPrev *string
	}{
		{"created", "", TypeStatusChanged, nil},
		{"changed", store.StatusValid, TypeStatusChanged, ptr("VALID")},
		{"processing", store.StatusPending, TypeProcessingUpdated, ptr("PENDING")},
	} {
		msg, err := Events{}.Event(store.Change{LineItem: li, From: c.from, Actor: "me", Reason: "why", At: at})
		if err != nil {
			t.Fatal(err)
		}
		var ev Event
		if err := json.Unmarshal(msg.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		if msg.Subject != "events.line_item.pending" || msg.Headers[HeaderLineItemID] != "li_1" || msg.MsgID != ev.EventID {
			t.Errorf("%s: subject %q, headers %v, msg id %q (event %q)", c.name, msg.Subject, msg.Headers, msg.MsgID, ev.EventID)
		}
		if ev.Type != c.wantType || (ev.PreviousStatus == nil) != (c.wantPrev == nil) ||
			(c.wantPrev != nil && *ev.PreviousStatus != *c.wantPrev) {
			t.Errorf("%s: type %q previous %v, want %q %v", c.name, ev.Type, ev.PreviousStatus, c.wantType, c.wantPrev)
		}
		if ev.LineItem.PaymentProcessing == nil || ev.LineItem.PaymentProcessing.AttemptStatus != "held" ||
			ev.At != "2026-11-30T12:00:00Z" || ev.Actor != "me" {
			t.Errorf("%s: event %+v does not show the line item as the API does", c.name, ev)
		}
	}
}

func ptr(s string) *string { return &s }
