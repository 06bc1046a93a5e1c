package webhooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/payrail/payrail/internal/canopy"
)

// Canopy-style event names (snake_case, object then action, like Canopy's
// account_create). payrail's events map to them so:
//
//	line_item.status_changed, previous_status null  → line_item_create
//	line_item.status_changed, to status S           → line_item_<s>   (line_item_valid, line_item_declined, …)
//	line_item.processing_updated                    → line_item_processing_update
const (
	EventLineItemCreate           = "line_item_create"
	EventLineItemProcessingUpdate = "line_item_processing_update"
	eventStatusPrefix             = "line_item_"
	// EventEndpointPaused is the failure notification's event.
	EventEndpointPaused = "webhook_endpoint_paused"
)

// EventName maps a payrail event to its webhook event name.
func EventName(typ string, previousStatus *string, status string) (string, error) {
	switch typ {
	case canopy.TypeStatusChanged:
		if previousStatus == nil {
			return EventLineItemCreate, nil
		}
		if status == "" {
			return "", errors.New("webhooks: status change without a status")
		}
		return eventStatusPrefix + strings.ToLower(status), nil
	case canopy.TypeProcessingUpdated:
		return EventLineItemProcessingUpdate, nil
	}
	return "", fmt.Errorf("webhooks: unknown event type %q", typ)
}

// eventFields is what the webhook needs of a payrail event; the line item
// stays raw, exactly as the API renders it.
type eventFields struct {
	EventID        string          `json:"event_id"`
	Type           string          `json:"type"`
	At             string          `json:"at"`
	PreviousStatus *string         `json:"previous_status"`
	Status         string          `json:"status"`
	LineItem       json.RawMessage `json:"line_item"`
}

// webhookData is the envelope's data member: {changed_at, object}.
type webhookData struct {
	ChangedAt string          `json:"changed_at"`
	Object    json.RawMessage `json:"object"`
}

// fromEvent turns a payrail event message body into its webhook name and
// data bytes.
func fromEvent(body []byte) (ev eventFields, name string, data []byte, err error) {
	if err := json.Unmarshal(body, &ev); err != nil {
		return ev, "", nil, fmt.Errorf("webhooks: decode event: %w", err)
	}
	if ev.EventID == "" || len(ev.LineItem) == 0 || ev.At == "" {
		return ev, "", nil, errors.New("webhooks: event lacks event_id, at or line_item")
	}
	if name, err = EventName(ev.Type, ev.PreviousStatus, ev.Status); err != nil {
		return ev, "", nil, err
	}
	data, err = json.Marshal(webhookData{ChangedAt: ev.At, Object: ev.LineItem})
	return ev, name, data, err
}
