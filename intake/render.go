package intake

import (
	"time"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

func formatTime(t time.Time) string { return canopy.FormatTime(t) }

// renderLineItem is the line item as the API (and every event) shows it.
func renderLineItem(li store.LineItem) canopy.LineItem { return canopy.Render(li) }

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
	if a.Processors.ACH.Processor == processors.CanopyNACHA {
		out.Processors.ACH.CanopyNACHA = &canopyNachaMaskedJSON{
			RoutingNumber: a.Processors.ACH.RoutingNumber,
			LastFour:      a.Processors.ACH.LastFour,
			AccountType:   a.Processors.ACH.AccountType,
		}
	}
	if a.Processors.Debit.Processor == processors.AuthorizeNet {
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
	OffsetPlacement       string                 `json:"offset_placement"`
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
		OffsetPlacement:       c.OffsetPlacement,
		UpdatedAt:             formatTime(c.UpdatedAt),
	}
	if c.Offset != nil {
		out.Offset = &canopyNachaMaskedJSON{
			RoutingNumber: c.Offset.RoutingNumber, LastFour: c.Offset.LastFour, AccountType: c.Offset.AccountType,
		}
	}
	return out
}
