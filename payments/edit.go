package payments

import (
	"context"

	"github.com/payrail/payrail/internal/store"
)

// Edit is a manual change of a line item (PUT): its status, its amount, or
// both; nil leaves a field as it is.
type Edit struct {
	OrgID       string
	AccountID   string
	LineItemID  string
	Status      *store.Status
	AmountCents *int64
	Actor       string
	Reason      string
}

// Edit applies e if the state rules allow it (CheckEdit, judged under the
// line item's row lock), recording the transition and its event. A
// refused change is a *store.TransitionError; a missing line item is
// store.ErrNotFound; repeating an applied change changes nothing.
func (s *Service) Edit(ctx context.Context, e Edit) (store.LineItem, error) {
	return s.store.UpdateLineItem(ctx, e.OrgID, e.AccountID, e.LineItemID, store.LineItemUpdate{
		Status: e.Status, AmountCents: e.AmountCents, Actor: e.Actor, Reason: e.Reason, Check: CheckEdit,
	})
}
