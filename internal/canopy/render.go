package canopy

import (
	"encoding/json"

	"github.com/payrail/payrail/internal/store"
)

var jsonNull = json.RawMessage("null")

// Render is the line item as the API shows it.
func Render(li store.LineItem) LineItem {
	out := LineItem{
		AccountID:   li.AccountID,
		LineItemID:  li.LineItemID,
		EffectiveAt: FormatTime(li.EffectiveAt),
		CreatedAt:   FormatTime(li.CreatedAt),
		UpdatedAt:   FormatTime(li.UpdatedAt),
		ProductID:   li.ProductID,
		Overview:    Overview{Status: string(li.Status), Type: li.Type, Description: li.Description},
		Summary: Summary{
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
		out.ExternalFields = []ExternalField{}
	}
	if li.ValidAt != nil {
		v := FormatTime(*li.ValidAt)
		out.ValidAt = &v
	}
	if a := li.Attempt; a != nil {
		pp := &PaymentProcessing{
			ProcessorName: a.Processor, AttemptID: a.AttemptID, AttemptStatus: string(a.Status), Deliveries: a.Deliveries,
			TransactionID: nonEmpty(a.TransactionID), ResultCode: nonEmpty(a.ResultCode),
			ResultMessage: nonEmpty(a.ResultMessage), NachaFileID: nonEmpty(a.NachaFileID),
			TraceNumber: nonEmpty(a.TraceNumber),
		}
		if a.InstrumentKind != "" {
			pp.Instrument = &Instrument{Kind: a.InstrumentKind, Brand: nonEmpty(a.InstrumentBrand), LastFour: a.InstrumentLastFour}
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
