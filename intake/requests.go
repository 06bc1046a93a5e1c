package intake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/payrail/payrail/intake/validate"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// Status sets accepted on each route (Canopy's enums).
var (
	recordStatuses = names(store.StatusValid, store.StatusInvalid, store.StatusPending, store.StatusAuthorized)
	chargeStatuses = names(store.StatusValid, store.StatusInvalid, store.StatusOffset, store.StatusPending,
		store.StatusAuthorized, store.StatusDeclined, store.StatusVoid, store.StatusPosted)
	allStatuses = append(append([]string{}, chargeStatuses...), string(store.StatusReversed))
	listTypes   = []string{store.TypeCharge, store.TypePayment, store.TypePaymentReversal, store.TypeChargeReversal,
		"CREDIT_OFFSET", "DEBIT_OFFSET", "MANUAL_FEE"}
)

// names spells statuses as the enum lists of a request.
func names(statuses ...store.Status) []string {
	out := make([]string, len(statuses))
	for i, s := range statuses {
		out[i] = string(s)
	}
	return out
}

// fingerprint is the idempotency hash of a normalized request: the same
// request always hashes the same, whatever its JSON spelling. It is an
// HMAC so that a stored fingerprint of a body holding a bank account or
// card number cannot be brute-forced back to the number.
func fingerprint(key []byte, origin, accountID string, normalized any) []byte {
	body, err := json.Marshal(normalized)
	if err != nil {
		panic(fmt.Sprintf("intake: normalized request does not marshal: %v", err)) // our own types
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(origin + "\x00" + accountID + "\x00"))
	h.Write(body)
	return h.Sum(nil)
}

// lineItemRequest is the normalized body shared by the line item routes.
type lineItemRequest struct {
	LineItemID     string                `json:"line_item_id"`
	AmountCents    int64                 `json:"original_amount_cents"`
	Status         string                `json:"line_item_status"`
	EffectiveAt    *time.Time            `json:"effective_at"`
	ExternalFields []store.ExternalField `json:"external_fields"`
	MerchantData   json.RawMessage       `json:"merchant_data,omitempty"`
	IssuerDetails  json.RawMessage       `json:"issuer_processor_details,omitempty"`
}

// commonLineItemFields reads the members every line item route shares.
func commonLineItemFields(o *object, now time.Time, idRequired bool, statuses []string, maxExternal int) lineItemRequest {
	var req lineItemRequest
	if id, ok := o.str("line_item_id"); ok {
		o.check("line_item_id", validate.LineItemID(id))
		req.LineItemID = id
	} else if idRequired {
		o.require("line_item_id")
	}
	if v, ok := o.integer("original_amount_cents"); ok {
		o.check("original_amount_cents", validate.AmountCents(v))
		req.AmountCents = v
	} else if !o.has("original_amount_cents") {
		o.require("original_amount_cents")
	}
	req.Status = string(store.StatusValid)
	if s, ok := o.enum("line_item_status", statuses...); ok {
		req.Status = s
	}
	if t, ok := o.timestamp("effective_at"); ok {
		o.check("effective_at", validate.EffectiveAt(t, now))
		req.EffectiveAt = &t
	}
	req.ExternalFields = externalFields(o, maxExternal)
	return req
}

// Bounds of one external field (docs/api.md): Canopy documents none, and
// with at most 100 fields they keep a line item under ~130 KiB.
const (
	maxExternalKey   = 64
	maxExternalValue = 256
)

// externalFields reads external_fields: an array of {key, value} strings,
// or an empty object (the Canopy examples send {}), at most max entries.
func externalFields(o *object, max int) []store.ExternalField {
	raw, ok := o.member("external_fields")
	if !ok {
		return []store.ExternalField{}
	}
	field := o.pointer("external_fields")
	var asObject map[string]json.RawMessage
	if json.Unmarshal(raw, &asObject) == nil && asObject != nil {
		if len(asObject) == 0 {
			return []store.ExternalField{}
		}
		o.p.add(field, "must be an array of {key, value} objects")
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		o.p.add(field, "must be an array of {key, value} objects")
		return nil
	}
	if len(items) > max {
		o.p.add(field, fmt.Sprintf("must have at most %d entries", max))
		return nil
	}
	out := make([]store.ExternalField, 0, len(items))
	for i, item := range items {
		e := o.p.object(fmt.Sprintf("%s/%d", field, i), item)
		if e == nil {
			continue
		}
		k, kok := e.str("key")
		v, vok := e.str("value")
		if !kok {
			e.require("key")
		}
		if !vok {
			e.require("value")
		}
		if kok && utf8.RuneCountInString(k) > maxExternalKey {
			e.p.add(e.pointer("key"), fmt.Sprintf("must be at most %d characters", maxExternalKey))
		}
		if vok && utf8.RuneCountInString(v) > maxExternalValue {
			e.p.add(e.pointer("value"), fmt.Sprintf("must be at most %d characters", maxExternalValue))
		}
		e.finish()
		out = append(out, store.ExternalField{Key: k, Value: v})
	}
	return out
}

// parsePaymentRecord reads POST .../payments/payment_record.
func parsePaymentRecord(o *object, now time.Time) (lineItemRequest, *apiError) {
	req := commonLineItemFields(o, now, true, recordStatuses, 10)
	o.finish()
	return req, o.p.err()
}

// parseCharge reads POST .../line_items/charges.
func parseCharge(o *object, now time.Time) (lineItemRequest, *apiError) {
	req := commonLineItemFields(o, now, false, chargeStatuses, 100)
	if m, ok := o.child("merchant_data"); ok {
		md := map[string]string{}
		for _, name := range []string{"name", "id", "mcc_code", "phone_number"} {
			if s, ok := m.str(name); ok {
				if len(s) > 255 {
					m.p.add(m.pointer(name), "must be at most 255 characters")
				}
				md[name] = s
			}
		}
		m.finish()
		req.MerchantData, _ = json.Marshal(md)
	}
	if meta, ok := o.child("issuer_processor_metadata"); ok {
		if lithic, ok := meta.child("lithic"); ok {
			if lf, ok := lithic.str("last_four"); ok {
				lithic.check("last_four", lastFourOnly(lf))
				req.IssuerDetails, _ = json.Marshal(map[string]map[string]string{"lithic": {"last_four": lf}})
			}
			lithic.finish()
		}
		meta.finish()
	}
	o.finish()
	return req, o.p.err()
}

// lastFourOnly keeps card numbers out of issuer metadata: the field may
// carry a label but never more than four digits.
func lastFourOnly(s string) error {
	digits := 0
	for _, c := range s {
		if c >= '0' && c <= '9' {
			digits++
		}
	}
	if digits > 4 || len(s) > 32 {
		return fmt.Errorf("must hold at most the last four digits of a card")
	}
	return nil
}

// updateRequest is the body of PUT .../line_items/{id}.
type updateRequest struct {
	Status      *store.Status
	AmountCents *int64
}

// parseUpdate reads PUT .../line_items/{id}. Unlike Canopy, where an
// omitted status means VALID, payrail leaves omitted fields unchanged: a
// PUT that only corrects an amount must not post a pending payment.
func parseUpdate(o *object) (updateRequest, *apiError) {
	var req updateRequest
	if s, ok := o.enum("line_item_status", chargeStatuses...); ok {
		status := store.Status(s)
		req.Status = &status
	}
	if v, ok := o.integer("original_amount_cents"); ok {
		if o.check("original_amount_cents", validate.AmountCents(v)) {
			req.AmountCents = &v
		}
	}
	if !o.has("line_item_status") && !o.has("original_amount_cents") {
		o.p.add("/", "send line_item_status, original_amount_cents or both")
	}
	o.finish()
	return req, o.p.err()
}

// accountRequest is the normalized body of POST /accounts.
type accountRequest struct {
	AccountID      string                 `json:"account_id"`
	ProductID      string                 `json:"product_id"`
	CustomerName   string                 `json:"customer_name"`
	ExternalFields []store.ExternalField  `json:"external_fields"`
	Processors     *store.ProcessorConfig `json:"payment_processor_config"`
}

func parseAccount(o *object) (accountRequest, *apiError) {
	var req accountRequest
	if id, ok := o.str("account_id"); ok {
		if o.check("account_id", validate.LineItemID(id)) {
			req.AccountID = id
		}
	}
	if pid, ok := o.str("product_id"); ok {
		if pid == "" || len(pid) > 64 {
			o.p.add(o.pointer("product_id"), "must be 1 to 64 characters")
		}
		req.ProductID = pid
	} else {
		o.require("product_id")
	}
	if name, ok := o.str("customer_name"); ok {
		if len(name) > 128 {
			o.p.add(o.pointer("customer_name"), "must be at most 128 characters")
		}
		req.CustomerName = strings.TrimSpace(name)
	}
	req.ExternalFields = externalFields(o, 100)
	if c, ok := o.child("payment_processor_config"); ok {
		cfg := processorConfig(c)
		req.Processors = &cfg
	}
	o.finish()
	return req, o.p.err()
}

func parseProcessorConfig(o *object) (store.ProcessorConfig, *apiError) {
	cfg := processorConfig(o)
	return cfg, o.p.err()
}

// processorConfig reads {ach: {...}, debit: {...}}; an omitted method is NONE.
func processorConfig(o *object) store.ProcessorConfig {
	cfg := store.ProcessorConfig{
		ACH:   store.ACHConfig{Processor: processors.NoProcessor},
		Debit: store.DebitConfig{Processor: processors.NoProcessor},
	}
	if ach, ok := ach(o); ok {
		cfg.ACH = ach
	}
	if d, ok := o.child("debit"); ok {
		name, _ := d.enum("payment_processor_name", processors.NoProcessor, processors.AuthorizeNet)
		if !d.has("payment_processor_name") {
			d.require("payment_processor_name")
		}
		cfg.Debit.Processor = name
		anet, hasConfig := d.child("authorize_net_config")
		switch {
		case name == processors.AuthorizeNet && !hasConfig && !d.has("authorize_net_config"):
			d.require("authorize_net_config")
		case name == processors.NoProcessor && d.has("authorize_net_config"):
			d.p.add(d.pointer("authorize_net_config"), "must be omitted when payment_processor_name is NONE")
		case hasConfig:
			cfg.Debit.CustomerProfileID = profileID(anet, "customer_profile_id")
			cfg.Debit.PaymentProfileID = profileID(anet, "payment_profile_id")
			anet.finish()
		}
		d.finish()
	}
	o.finish()
	return cfg
}

func ach(o *object) (store.ACHConfig, bool) {
	a, ok := o.child("ach")
	if !ok {
		return store.ACHConfig{}, false
	}
	out := store.ACHConfig{Processor: processors.NoProcessor}
	name, _ := a.enum("payment_processor_name", processors.NoProcessor, processors.CanopyNACHA)
	if !a.has("payment_processor_name") {
		a.require("payment_processor_name")
	}
	out.Processor = name
	nacha, hasConfig := a.child("canopy_nacha_config")
	switch {
	case name == processors.CanopyNACHA && !hasConfig && !a.has("canopy_nacha_config"):
		a.require("canopy_nacha_config")
	case name == processors.NoProcessor && a.has("canopy_nacha_config"):
		a.p.add(a.pointer("canopy_nacha_config"), "must be omitted when payment_processor_name is NONE")
	case hasConfig:
		out.RoutingNumber, out.AccountNumber, out.AccountType = bankAccount(nacha)
		nacha.finish()
	}
	a.finish()
	return out, true
}

// bankAccount reads bank_routing_number, bank_account_number and
// bank_account_type (CHECKING by default).
func bankAccount(o *object) (routing, number, kind string) {
	if v, ok := o.str("bank_routing_number"); ok {
		o.check("bank_routing_number", validate.ABARoutingNumber(v))
		routing = v
	} else {
		o.require("bank_routing_number")
	}
	if v, ok := o.str("bank_account_number"); ok {
		o.check("bank_account_number", validate.BankAccountNumber(v))
		number = v
	} else {
		o.require("bank_account_number")
	}
	kind = "CHECKING"
	if v, ok := o.enum("bank_account_type", "CHECKING", "SAVINGS"); ok {
		kind = v
	}
	return routing, number, kind
}

// profileID reads an Authorize.Net profile id: 1 to 20 digits.
func profileID(o *object, name string) string {
	v, ok := o.str(name)
	if !ok {
		o.require(name)
		return ""
	}
	if len(v) == 0 || len(v) > 20 || strings.Trim(v, "0123456789") != "" {
		o.p.add(o.pointer(name), "must be 1 to 20 digits")
	}
	return v
}

// parseNachaConfig reads PUT /organization/nacha_config.
func parseNachaConfig(o *object) (store.NachaConfig, *apiError) {
	var c store.NachaConfig
	c.DestinationBankName, c.DestinationRouting = nachaBank(o, "nacha_destination_config")
	c.OriginBankName, c.OriginRouting = nachaBank(o, "nacha_origin_config")
	c.CompanyName = nachaText(o, "company_name", 16, true)
	c.CompanyIdentification = nachaText(o, "company_identification", 10, true)
	c.EntryDescription = nachaText(o, "company_entry_description", 10, false)
	if c.EntryDescription == "" {
		c.EntryDescription = "PAYMENT"
	}
	c.Balanced, _ = o.boolean("is_balanced_nacha")
	if off, ok := o.child("offset_account"); ok {
		var acct store.OffsetAccount
		acct.RoutingNumber, acct.AccountNumber, acct.AccountType = bankAccount(off)
		off.finish()
		c.Offset = &acct
	}
	if v, ok := o.enum("offset_placement", "OWN_BATCH", "SAME_BATCH"); ok {
		c.OffsetPlacement = v
	} else if !o.has("offset_placement") {
		c.OffsetPlacement = "OWN_BATCH"
	}
	if c.Balanced && !o.has("offset_account") {
		o.p.add(o.pointer("offset_account"), "is required when is_balanced_nacha is true")
	}
	o.finish()
	return c, o.p.err()
}

func nachaBank(o *object, name string) (bankName, routing string) {
	b, ok := o.child(name)
	if !ok {
		if !o.has(name) {
			o.require(name)
		}
		return "", ""
	}
	bankName = nachaText(b, "bank_name", 23, true)
	if v, ok := b.str("bank_routing_number"); ok {
		b.check("bank_routing_number", validate.ABARoutingNumber(v))
		routing = v
	} else {
		b.require("bank_routing_number")
	}
	b.finish()
	return bankName, routing
}

// nachaText reads a NACHA alphanumeric field: printable ASCII, at most max
// characters (the record's field width).
func nachaText(o *object, name string, max int, required bool) string {
	v, ok := o.str(name)
	if !ok {
		if required {
			o.require(name)
		}
		return ""
	}
	v = strings.TrimSpace(v)
	switch {
	case v == "" && required:
		o.p.add(o.pointer(name), "must not be empty")
	case len(v) > max:
		o.p.add(o.pointer(name), fmt.Sprintf("must be at most %d characters", max))
	case strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0:
		o.p.add(o.pointer(name), "must be printable ASCII (NACHA alphanumeric)")
	}
	return strings.ToUpper(v)
}
