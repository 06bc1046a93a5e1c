package canopy

import (
	"encoding/json"
	"fmt"

	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/internal/store"
)

// Event types.
const (
	// TypeStatusChanged: the line item was created or its status changed.
	TypeStatusChanged = "line_item.status_changed"
	// TypeProcessingUpdated: the status stayed, the payment's processing
	// moved on (staged, held, dropped in a NACHA file, a NOC applied).
	TypeProcessingUpdated = "line_item.processing_updated"
)

// HeaderLineItemID names the line item on every event message, so a
// consumer can route or filter without decoding the body.
const HeaderLineItemID = "Payrail-Line-Item-Id"

// HeaderOrgID names the line item's org on every event message; the
// webhooks role routes events to the org's subscription by it.
const HeaderOrgID = "Payrail-Org-Id"

// Events renders the store's line item changes as event messages on
// payrail.events.line_item.<status>. Its zero value is ready to use.
type Events struct{}

var _ store.Events = Events{}

// Event implements store.Events. The event id is also the message's
// Nats-Msg-Id, so a republished event is dropped by JetStream.
func (Events) Event(c store.Change) (store.OutboxMessage, error) {
	li := c.LineItem
	id := store.NewID("evt_")
	typ := TypeStatusChanged
	if c.From == li.Status {
		typ = TypeProcessingUpdated
	}
	ev := Event{
		EventID: id, Type: typ, At: FormatTime(c.At),
		Status: string(li.Status), Actor: c.Actor, Reason: c.Reason, LineItem: Render(li),
	}
	if c.From != "" {
		from := string(c.From)
		ev.PreviousStatus = &from
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return store.OutboxMessage{}, fmt.Errorf("canopy: encode event of line item %s: %w", li.LineItemID, err)
	}
	return store.OutboxMessage{MsgID: id, Subject: queue.EventSubject(string(li.Status)), Payload: body,
		Headers: map[string]string{HeaderLineItemID: li.LineItemID, HeaderOrgID: li.OrgID}}, nil
}
