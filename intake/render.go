package intake

import (
	"encoding/json"
	"time"

	"github.com/payrail/payrail/store"
)

// timeFormat is RFC 3339 in UTC with PostgreSQL's microsecond precision.
const timeFormat = "2006-01-02T15:04:05.999999Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

type lineItemJSON struct {
	AccountID              string                `json:"account_id"`
	LineItemID             string                `json:"line_item_id"`
	EffectiveAt            string                `json:"effective_at"`
	ValidAt                *string               `json:"valid_at,omitempty"`
	CreatedAt              string                `json:"created_at"`
	UpdatedAt              string                `json:"updated_at"`
	ProductID              string                `json:"product_id"`
	Overview               lineItemOverview      `json:"line_item_overview"`
	Summary                lineItemSummary       `json:"line_item_summary"`
	MerchantData           json.RawMessage       `json:"merchant_data"`
	IssuerProcessorDetails json.RawMessage       `json:"issuer_processor_details"`
	ExternalFields         []store.ExternalField `json:"external_fields"`
}

type lineItemOverview struct {
	Status      string `json:"line_item_status"`
	Type        string `json:"line_item_type"`
	Description string `json:"description"`
}

// lineItemSummary: payrail keeps no interest engine, so balances follow
// the amount and the interest buckets are zero (SPEC §2).
type lineItemSummary struct {
	OriginalAmountCents          int64 `json:"original_amount_cents"`
	BalanceCents                 int64 `json:"balance_cents"`
	PrincipalCents               int64 `json:"principal_cents"`
	InterestBalanceCents         int64 `json:"interest_balance_cents"`
	AmInterestBalanceCents       int64 `json:"am_interest_balance_cents"`
	DeferredInterestBalanceCents int64 `json:"deferred_interest_balance_cents"`
	AmDeferredInterestCents      int64 `json:"am_deferred_interest_balance_cents"`
	AmFeesBalanceCents           int64 `json:"am_fees_balance_cents"`
	TotalInterestPaidToDateCents int64 `json:"total_interest_paid_to_date_cents"`
}

var nullJSON = json.RawMessage("null")

func renderLineItem(li store.LineItem) lineItemJSON {
	out := lineItemJSON{
		AccountID:   li.AccountID,
		LineItemID:  li.LineItemID,
		EffectiveAt: formatTime(li.EffectiveAt),
		CreatedAt:   formatTime(li.CreatedAt),
		UpdatedAt:   formatTime(li.UpdatedAt),
		ProductID:   li.ProductID,
		Overview:    lineItemOverview{Status: li.Status, Type: li.Type, Description: li.Description},
		Summary: lineItemSummary{
			OriginalAmountCents: li.AmountCents,
			BalanceCents:        li.AmountCents,
			PrincipalCents:      li.AmountCents,
		},
		MerchantData:           orNull(li.MerchantData),
		IssuerProcessorDetails: orNull(li.IssuerProcessorDetails),
		ExternalFields:         li.ExternalFields,
	}
	if out.ExternalFields == nil {
		out.ExternalFields = []store.ExternalField{}
	}
	if li.ValidAt != nil {
		v := formatTime(*li.ValidAt)
		out.ValidAt = &v
	}
	return out
}

func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nullJSON
	}
	return raw
}

type accountJSON struct {
	AccountID      string                `json:"account_id"`
	CreatedAt      string                `json:"created_at"`
	UpdatedAt      string                `json:"updated_at"`
	CustomerName   *string               `json:"customer_name"`
	Overview       accountOverview       `json:"account_overview"`
	Product        accountProduct        `json:"account_product"`
	ExternalFields []store.ExternalField `json:"external_fields"`
	Processors     processorConfigJSON   `json:"payment_processor_config"`
}

type accountOverview struct {
	Status string `json:"account_status"`
}

type accountProduct struct {
	ProductID string `json:"product_id"`
}

type processorConfigJSON struct {
	ACH   achConfigJSON   `json:"ach"`
	Debit debitConfigJSON `json:"debit"`
}

type achConfigJSON struct {
	Processor   string                 `json:"payment_processor_name"`
	CanopyNACHA *canopyNachaMaskedJSON `json:"canopy_nacha_config,omitempty"`
}

// canopyNachaMaskedJSON never carries the account number: only its last four.
type canopyNachaMaskedJSON struct {
	RoutingNumber string `json:"bank_routing_number"`
	LastFour      string `json:"bank_account_number_last_four"`
	AccountType   string `json:"bank_account_type"`
}

type debitConfigJSON struct {
	Processor    string                `json:"payment_processor_name"`
	AuthorizeNet *authorizeNetConfJSON `json:"authorize_net_config,omitempty"`
}

type authorizeNetConfJSON struct {
	CustomerProfileID string `json:"customer_profile_id"`
	PaymentProfileID  string `json:"payment_profile_id"`
}

func renderAccount(a store.Account) accountJSON {
	out := accountJSON{
		AccountID:      a.AccountID,
		CreatedAt:      formatTime(a.CreatedAt),
		UpdatedAt:      formatTime(a.UpdatedAt),
		Overview:       accountOverview{Status: a.Status},
		Product:        accountProduct{ProductID: a.ProductID},
		ExternalFields: a.ExternalFields,
		Processors: processorConfigJSON{
			ACH:   achConfigJSON{Processor: a.Processors.ACH.Processor},
			Debit: debitConfigJSON{Processor: a.Processors.Debit.Processor},
		},
	}
	if a.CustomerName != "" {
		out.CustomerName = &a.CustomerName
	}
	if out.ExternalFields == nil {
		out.ExternalFields = []store.ExternalField{}
	}
	if a.Processors.ACH.Processor == store.ProcessorCanopyNACHA {
		out.Processors.ACH.CanopyNACHA = &canopyNachaMaskedJSON{
			RoutingNumber: a.Processors.ACH.RoutingNumber,
			LastFour:      a.Processors.ACH.LastFour,
			AccountType:   a.Processors.ACH.AccountType,
		}
	}
	if a.Processors.Debit.Processor == store.ProcessorAuthorizeNet {
		out.Processors.Debit.AuthorizeNet = &authorizeNetConfJSON{
			CustomerProfileID: a.Processors.Debit.CustomerProfileID,
			PaymentProfileID:  a.Processors.Debit.PaymentProfileID,
		}
	}
	return out
}

type nachaConfigJSON struct {
	Destination           nachaBankJSON          `json:"nacha_destination_config"`
	Origin                nachaBankJSON          `json:"nacha_origin_config"`
	CompanyName           string                 `json:"company_name"`
	CompanyIdentification string                 `json:"company_identification"`
	EntryDescription      string                 `json:"company_entry_description"`
	Balanced              bool                   `json:"is_balanced_nacha"`
	Offset                *canopyNachaMaskedJSON `json:"offset_account"`
	UpdatedAt             string                 `json:"updated_at"`
}

type nachaBankJSON struct {
	BankName      string `json:"bank_name"`
	RoutingNumber string `json:"bank_routing_number"`
}

func renderNachaConfig(c store.NachaConfig) nachaConfigJSON {
	out := nachaConfigJSON{
		Destination:           nachaBankJSON{BankName: c.DestinationBankName, RoutingNumber: c.DestinationRouting},
		Origin:                nachaBankJSON{BankName: c.OriginBankName, RoutingNumber: c.OriginRouting},
		CompanyName:           c.CompanyName,
		CompanyIdentification: c.CompanyIdentification,
		EntryDescription:      c.EntryDescription,
		Balanced:              c.Balanced,
		UpdatedAt:             formatTime(c.UpdatedAt),
	}
	if c.Offset != nil {
		out.Offset = &canopyNachaMaskedJSON{
			RoutingNumber: c.Offset.RoutingNumber, LastFour: c.Offset.LastFour, AccountType: c.Offset.AccountType,
		}
	}
	return out
}
