package store

import (
	"encoding/json"

	"github.com/payrail/payrail/internal/canopy"
)

var jsonNull = json.RawMessage("null")

// Canopy renders the line item as the API shows it.
func (li LineItem) Canopy() canopy.LineItem {
	out := canopy.LineItem{
		AccountID:   li.AccountID,
		LineItemID:  li.LineItemID,
		EffectiveAt: canopy.FormatTime(li.EffectiveAt),
		CreatedAt:   canopy.FormatTime(li.CreatedAt),
		UpdatedAt:   canopy.FormatTime(li.UpdatedAt),
		ProductID:   li.ProductID,
		Overview:    canopy.Overview{Status: li.Status, Type: li.Type, Description: li.Description},
		Summary: canopy.Summary{
			OriginalAmountCents: li.AmountCents,
			BalanceCents:        li.AmountCents,
			PrincipalCents:      li.AmountCents,
		},
		MerchantData:           orNull(li.MerchantData),
		IssuerProcessorDetails: orNull(li.IssuerProcessorDetails),
		ExternalFields:         li.ExternalFields,
		RelatedLineItemID:      li.RelatedLineItemID,
	}
	if out.ExternalFields == nil {
		out.ExternalFields = []canopy.ExternalField{}
	}
	if li.ValidAt != nil {
		v := canopy.FormatTime(*li.ValidAt)
		out.ValidAt = &v
	}
	if a := li.Attempt; a != nil {
		pp := &canopy.PaymentProcessing{
			ProcessorName: a.Processor, AttemptID: a.AttemptID, AttemptStatus: a.Status, Deliveries: a.Deliveries,
			TransactionID: nonEmpty(a.TransactionID), ResultCode: nonEmpty(a.ResultCode),
			ResultMessage: nonEmpty(a.ResultMessage), NachaFileID: nonEmpty(a.NachaFileID),
			TraceNumber: nonEmpty(a.TraceNumber),
		}
		if a.InstrumentKind != "" {
			pp.Instrument = &canopy.Instrument{Kind: a.InstrumentKind, Brand: nonEmpty(a.InstrumentBrand), LastFour: a.InstrumentLastFour}
		}
		out.PaymentProcessing = pp
	}
	return out
}

func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return jsonNull
	}
	return raw
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
