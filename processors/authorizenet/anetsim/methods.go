package anetsim

import (
	"crypto/subtle"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
)

// envelope is what every request carries (ANetApiRequest).
type envelope struct {
	MerchantAuthentication struct {
		Name           text `json:"name"`
		TransactionKey text `json:"transactionKey"`
	} `json:"merchantAuthentication"`
	RefID text `json:"refId"`
}

// dispatch runs a schema-valid request. body is the request JSON; method
// its root key.
func (s *Server) dispatch(method string, body []byte) any {
	var root map[string]json.RawMessage
	if err := json.Unmarshal(body, &root); err != nil {
		return errorReply("", "E00003", "The request could not be decoded.")
	}
	raw := root[method]
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return errorReply("", "E00003", "The request could not be decoded.")
	}
	refID := string(env.RefID)
	login := string(env.MerchantAuthentication.Name)
	if !s.authenticated(login, string(env.MerchantAuthentication.TransactionKey)) {
		return errorReply(refID, "E00007", "User authentication failed due to invalid authentication values.")
	}
	s.mu.Lock()
	s.byLogin[[2]string{login, method}]++
	off := reportingMethods[method] && (s.opts.ReportingOff || s.reportingOff[login])
	s.mu.Unlock()
	if off {
		return errorReply(refID, "E00011", "Access denied. You do not have permissions to call the Transaction Details API.")
	}
	switch method {
	case "createTransactionRequest":
		return s.createTransaction(login, refID, raw)
	case "getTransactionDetailsRequest":
		return s.getTransactionDetails(login, refID, raw)
	case "getUnsettledTransactionListRequest":
		return s.getUnsettledTransactionList(login, refID, raw)
	case "getSettledBatchListRequest":
		return s.getSettledBatchList(login, refID, raw)
	case "getTransactionListRequest":
		return s.getTransactionList(login, refID, raw)
	case "updateHeldTransactionRequest":
		return s.updateHeldTransaction(login, refID, raw)
	case "createCustomerProfileRequest":
		return s.createCustomerProfile(login, refID, raw)
	case "getCustomerPaymentProfileRequest":
		return s.getCustomerPaymentProfile(login, refID, raw)
	case "authenticateTestRequest":
		return simpleResponse{RefID: refID, Messages: okMessages()}
	}
	return errorReply(refID, "E00004", "The name of the requested API method is invalid. (The simulator implements "+
		"createTransactionRequest, getTransactionDetailsRequest, getUnsettledTransactionListRequest, "+
		"getSettledBatchListRequest, getTransactionListRequest, updateHeldTransactionRequest, "+
		"createCustomerProfileRequest, getCustomerPaymentProfileRequest and authenticateTestRequest.)")
}

// reportingMethods are the Transaction Details API's methods, which a
// merchant must enable in the Merchant Interface; while it is off each is
// answered E00011.
var reportingMethods = map[string]bool{
	"getTransactionDetailsRequest":       true,
	"getUnsettledTransactionListRequest": true,
	"getTransactionListRequest":          true,
	"getSettledBatchListRequest":         true,
	"getBatchStatisticsRequest":          true,
}

// SetReporting turns the Transaction Details API of a merchant login on
// or off (Options.ReportingOff turns it off for every login).
func (s *Server) SetReporting(login string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		delete(s.reportingOff, login)
	} else {
		s.reportingOff[login] = true
	}
}

// authenticated reports whether name and key are one merchant's login.
func (s *Server) authenticated(name, key string) bool {
	s.mu.Lock()
	want, ok := s.merchants[name]
	s.mu.Unlock()
	okKey := subtle.ConstantTimeCompare([]byte(key), []byte(want)) == 1
	return ok && okKey
}

type setting struct {
	SettingName  text `json:"settingName"`
	SettingValue text `json:"settingValue"`
}

// settings decodes ArrayOfSetting, whose "setting" may be an array or,
// for a single setting, an object.
type settings []setting

func (ss *settings) UnmarshalJSON(b []byte) error {
	var w struct {
		Setting json.RawMessage `json:"setting"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if len(w.Setting) > 0 && w.Setting[0] == '{' {
		var one setting
		if err := json.Unmarshal(w.Setting, &one); err != nil {
			return err
		}
		*ss = settings{one}
		return nil
	}
	if len(w.Setting) == 0 {
		return nil
	}
	var many []setting
	if err := json.Unmarshal(w.Setting, &many); err != nil {
		return err
	}
	*ss = many
	return nil
}

type transactionRequest struct {
	TransactionType text `json:"transactionType"`
	Amount          text `json:"amount"`
	Payment         *struct {
		CreditCard *struct {
			CardNumber     text `json:"cardNumber"`
			ExpirationDate text `json:"expirationDate"`
			CardCode       text `json:"cardCode"`
		} `json:"creditCard"`
	} `json:"payment"`
	Profile *struct {
		CustomerProfileID text `json:"customerProfileId"`
		PaymentProfile    *struct {
			PaymentProfileID text `json:"paymentProfileId"`
			CardCode         text `json:"cardCode"`
		} `json:"paymentProfile"`
	} `json:"profile"`
	RefTransID text `json:"refTransId"`
	Order      *struct {
		InvoiceNumber text `json:"invoiceNumber"`
		Description   text `json:"description"`
	} `json:"order"`
	PoNumber text `json:"poNumber"`
	Customer *struct {
		ID text `json:"id"`
	} `json:"customer"`
	BillTo *struct {
		FirstName text `json:"firstName"`
		LastName  text `json:"lastName"`
		Company   text `json:"company"`
		Address   text `json:"address"`
		City      text `json:"city"`
		State     text `json:"state"`
		Zip       text `json:"zip"`
		Country   text `json:"country"`
	} `json:"billTo"`
	TransactionSettings settings `json:"transactionSettings"`
}

// defaultDuplicateWindow applies when a request sends no duplicateWindow.
const (
	defaultDuplicateWindow = 2 * time.Minute
	maxDuplicateWindow     = 8 * time.Hour
)

func (s *Server) createTransaction(login, refID string, raw json.RawMessage) any {
	var req struct {
		TransactionRequest transactionRequest `json:"transactionRequest"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return errorReply(refID, "E00003", "The request could not be decoded.")
	}
	tr := req.TransactionRequest
	typ := string(tr.TransactionType)
	switch typ {
	case "voidTransaction":
		return s.void(login, refID, tr)
	case "refundTransaction":
		return s.refund(login, refID, tr)
	case "authCaptureTransaction", "authOnlyTransaction":
	default:
		return errorReply(refID, "E00060", "The simulator supports only authCaptureTransaction, authOnlyTransaction, voidTransaction and refundTransaction.")
	}
	fail := func(code int) any { return failed(refID, code) }

	cents, ok := parseCents(string(tr.Amount))
	if !ok || cents <= 0 {
		return fail(5)
	}

	// The instrument: a card, or a stored profile's card.
	var number, expiry, cardCode, zip, first, last string
	var customerProfileID, paymentProfileID string
	switch {
	case tr.Payment != nil && tr.Payment.CreditCard != nil:
		cc := tr.Payment.CreditCard
		number, expiry, cardCode = string(cc.CardNumber), string(cc.ExpirationDate), string(cc.CardCode)
	case tr.Profile != nil && tr.Profile.PaymentProfile != nil:
		customerProfileID = string(tr.Profile.CustomerProfileID)
		paymentProfileID = string(tr.Profile.PaymentProfile.PaymentProfileID)
		cardCode = string(tr.Profile.PaymentProfile.CardCode)
		// A profile exists for the merchant that created it only.
		p, ok := s.profile(login, customerProfileID, paymentProfileID)
		if !ok {
			return errorReply(refID, "E00040", "The record cannot be found.")
		}
		number, expiry, zip, first, last = p.CardNumber, p.ExpirationDate, p.Zip, p.FirstName, p.LastName
	default:
		return fail(33)
	}
	if tr.BillTo != nil {
		// The request's billing address wins over a profile's.
		zip, first, last = string(tr.BillTo.Zip), string(tr.BillTo.FirstName), string(tr.BillTo.LastName)
	}
	if !luhn(number) {
		return fail(6)
	}
	exp, err := parseExpiry(expiry)
	if err != nil {
		return fail(7)
	}
	now := s.opts.Now()
	if !now.Before(exp) {
		return fail(8)
	}

	window, windowSent := defaultDuplicateWindow, false
	windowValue := ""
	for _, st := range tr.TransactionSettings {
		if st.SettingName == "duplicateWindow" {
			secs, err := strconv.Atoi(string(st.SettingValue))
			if err != nil || secs < 0 {
				return fail(33)
			}
			window, windowSent, windowValue = min(time.Duration(secs)*time.Second, maxDuplicateWindow), true, string(st.SettingValue)
		}
	}
	invoice, description, customerID := "", "", ""
	if tr.Order != nil {
		invoice, description = string(tr.Order.InvoiceNumber), string(tr.Order.Description)
	}
	if tr.Customer != nil {
		customerID = string(tr.Customer.ID)
	}
	keyFields := []string{login, typ, number, expiry, customerProfileID, paymentProfileID,
		string(tr.PoNumber), formatCents(cents), invoice, customerID, windowValue}
	if b := tr.BillTo; b != nil {
		keyFields = append(keyFields, string(b.FirstName), string(b.LastName), string(b.Company),
			string(b.Address), string(b.City), string(b.State), string(b.Zip), string(b.Country))
	}
	key := dedupeKey(keyFields...)

	brand, known := testCards[number]
	if !known {
		brand = brandOf(number)
	}
	t := &Transaction{
		Type: typ, InvoiceNumber: invoice, Description: description, RefID: refID, AmountCents: cents,
		AccountNumber: maskNumber(number), AccountType: brand, FirstName: first, LastName: last, Zip: zip,
		CustomerID: customerID, CustomerProfileID: customerProfileID, PaymentProfileID: paymentProfileID,
		CardCodeSent: cardCode != "", SubmitTime: now, LoginID: login, dedupeKey: key,
	}
	t.AVSResultCode, t.CVVResultCode = "P", ""
	if zip != "" {
		t.AVSResultCode = "Y"
		if c, ok := avsByZip[zip[:min(5, len(zip))]]; ok {
			t.AVSResultCode = c
		}
	}
	if cardCode != "" {
		t.CVVResultCode = "M"
		if c, ok := cvvByCode[cardCode]; ok {
			t.CVVResultCode = c
		}
	}
	t.ReasonCode = 1
	switch {
	case !known:
		t.ReasonCode = 2 // the sandbox knows only its test cards
	case number == ErrorCard && cents%100 == 0:
		if _, ok := reasons[int(cents/100)]; ok {
			t.ReasonCode = int(cents / 100)
		}
	case strings.HasPrefix(zip, DeclineZip):
		t.ReasonCode = 2
	case cardCode == "901":
		t.ReasonCode = 65
	}
	rs := reasons[t.ReasonCode]
	t.ResponseCode = rs.responseCode
	if t.ReasonCode == 11 {
		// The error card asked for a duplicate: answer one without details.
		return duplicateReply(refID, nil)
	}
	if t.ResponseCode == 3 {
		// Processing errors are not recorded and take no part in the
		// duplicate check: nothing reached the card networks.
		return failed(refID, t.ReasonCode)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if orig := s.findDuplicate(key, window, now); orig != nil {
		if !windowSent {
			// Without duplicateWindow the API reports the duplicate but
			// none of the original's details (SIM/AIM guide).
			orig = nil
		}
		return duplicateReply(refID, orig)
	}
	switch t.ResponseCode {
	case 1:
		t.Status = StatusCapturedPendingSettlement
		if typ == "authOnlyTransaction" {
			t.Status = StatusAuthorizedPendingCapture
		}
	case 2:
		t.Status = StatusDeclined
	case 4:
		t.Status = StatusFDSPendingReview
		if t.ReasonCode == 253 {
			t.Status = StatusFDSAuthorizedPendingReview
		}
	}
	s.record(t)
	s.log.Debug("anetsim: transaction", "trans_id", t.TransID, "invoice", invoice,
		"response_code", t.ResponseCode, "reason", t.ReasonCode)
	return transactionReply(refID, t)
}

// failed answers a processing error (responseCode 3) with transId 0.
func failed(refID string, code int) any {
	rs := reasons[code]
	return createTransactionResponse{
		TransactionResponse: &transactionResponse{
			ResponseCode: strconv.Itoa(rs.responseCode), TransID: "0", TestRequest: "0",
			Errors: []trError{{ErrorCode: strconv.Itoa(code), ErrorText: rs.text}},
		},
		RefID:    refID,
		Messages: errMessages("E00027", "The transaction was unsuccessful."),
	}
}

func transactionReply(refID string, t *Transaction) any {
	tr := &transactionResponse{
		ResponseCode: strconv.Itoa(t.ResponseCode), AuthCode: t.AuthCode,
		AvsResultCode: t.AVSResultCode, CvvResultCode: t.CVVResultCode, TransID: t.TransID,
		TestRequest: "0", AccountNumber: t.AccountNumber, AccountType: t.AccountType,
	}
	rs := reasons[t.ReasonCode]
	msgs := okMessages()
	if t.ResponseCode == 1 || t.ResponseCode == 4 {
		tr.Messages = []trMessage{{Code: strconv.Itoa(t.ReasonCode), Description: rs.text}}
	} else {
		tr.Errors = []trError{{ErrorCode: strconv.Itoa(t.ReasonCode), ErrorText: rs.text}}
		msgs = errMessages("E00027", "The transaction was unsuccessful.")
	}
	return createTransactionResponse{TransactionResponse: tr, RefID: refID, Messages: msgs}
}

// duplicateReply answers reason 11, with the original's transId, auth
// code (if approved), AVS and CVV results when orig is given.
func duplicateReply(refID string, orig *Transaction) any {
	tr := &transactionResponse{
		ResponseCode: "3", TransID: "0", TestRequest: "0",
		Errors: []trError{{ErrorCode: "11", ErrorText: reasons[11].text}},
	}
	if orig != nil {
		tr.TransID, tr.AvsResultCode, tr.CvvResultCode = orig.TransID, orig.AVSResultCode, orig.CVVResultCode
		tr.AccountNumber, tr.AccountType = orig.AccountNumber, orig.AccountType
		if orig.ResponseCode == 1 {
			tr.AuthCode = orig.AuthCode
		}
	}
	return createTransactionResponse{
		TransactionResponse: tr, RefID: refID,
		Messages: errMessages("E00027", "The transaction was unsuccessful."),
	}
}

func brandOf(number string) string {
	switch {
	case strings.HasPrefix(number, "4"):
		return "Visa"
	case strings.HasPrefix(number, "5"), strings.HasPrefix(number, "2"):
		return "MasterCard"
	case strings.HasPrefix(number, "34"), strings.HasPrefix(number, "37"):
		return "AmericanExpress"
	case strings.HasPrefix(number, "6"):
		return "Discover"
	}
	return "Unknown"
}

func (s *Server) getTransactionDetails(login, refID string, raw json.RawMessage) any {
	var req struct {
		TransID text `json:"transId"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return errorReply(refID, "E00003", "The request could not be decoded.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.byID[string(req.TransID)]
	if t == nil || t.LoginID != login {
		return errorReply(refID, "E00040", "The record cannot be found.")
	}
	d := &transactionDetails{
		TransID: t.TransID, RefTransID: t.RefTransID, SubmitTimeUTC: utcStamp(t.SubmitTime), SubmitTimeLocal: localStamp(t.SubmitTime),
		TransactionType: t.Type, TransactionStatus: t.Status,
		ResponseCode: t.ResponseCode, ResponseReasonCode: t.ReasonCode,
		ResponseReasonDescription: reasons[t.ReasonCode].text,
		AuthCode:                  t.AuthCode, AVSResponse: t.AVSResultCode, CardCodeResponse: t.CVVResultCode,
		AuthAmount:   json.Number(formatCents(t.AmountCents)),
		SettleAmount: json.Number(formatCents(t.AmountCents)),
		Payment:      paymentMasked{CreditCard: creditCardMasked{CardNumber: t.AccountNumber, ExpirationDate: "XXXX", CardType: t.AccountType}},
		Product:      "Card Not Present", MarketType: "eCommerce",
	}
	if t.Status == StatusDeclined {
		d.SettleAmount = "0.00"
	}
	if t.BatchID != "" {
		d.Batch = &batchReply{BatchID: t.BatchID, SettlementTimeUTC: utcStamp(t.SettleTime),
			SettlementTimeLocal: localStamp(t.SettleTime), SettlementState: "settledSuccessfully"}
	}
	if t.InvoiceNumber != "" || t.Description != "" {
		d.Order = &orderReply{InvoiceNumber: t.InvoiceNumber, Description: t.Description}
	}
	if t.CustomerID != "" {
		d.Customer = &customerReply{ID: t.CustomerID}
	}
	if t.FirstName != "" || t.LastName != "" || t.Zip != "" {
		d.BillTo = &billToReply{FirstName: t.FirstName, LastName: t.LastName, Zip: t.Zip}
	}
	if t.CustomerProfileID != "" {
		d.Profile = &profileReply{CustomerProfileID: t.CustomerProfileID, CustomerPaymentProfileID: t.PaymentProfileID}
	}
	return getTransactionDetailsResponse{Transaction: d, RefID: refID, Messages: okMessages()}
}

type listOptions struct {
	Status  text `json:"status"`
	BatchID text `json:"batchId"`
	Sorting *struct {
		OrderBy         text `json:"orderBy"`
		OrderDescending text `json:"orderDescending"`
	} `json:"sorting"`
	Paging *struct {
		Limit  text `json:"limit"`
		Offset text `json:"offset"`
	} `json:"paging"`
}

// list sorts and pages txns as the request asks. Without paging the API
// returns at most 1000 transactions. With Options.OmitTotal the answer
// leaves totalNumInResultSet out.
func (s *Server) list(refID string, opts listOptions, txns []*Transaction) any {
	// Ascending by id unless told otherwise; ids grow with submit time,
	// so both orderBy values sort alike.
	if opts.Sorting != nil && (opts.Sorting.OrderDescending == "true" || opts.Sorting.OrderDescending == "1") {
		slices.Reverse(txns)
	}
	total := len(txns)
	limit, page := 1000, 1
	if opts.Paging != nil {
		limit, _ = strconv.Atoi(string(opts.Paging.Limit))
		page, _ = strconv.Atoi(string(opts.Paging.Offset))
	}
	start := min((page-1)*limit, len(txns))
	txns = txns[start:min(start+limit, len(txns))]
	out := transactionListResponse{RefID: refID, Messages: okMessages()}
	if !s.opts.OmitTotal {
		out.TotalNumInResultSet = &total
	}
	for _, t := range txns {
		amt := formatCents(t.AmountCents)
		if t.Status == StatusDeclined {
			amt = "0.00"
		}
		out.Transactions = append(out.Transactions, transactionSummary{
			TransID: t.TransID, SubmitTimeUTC: utcStamp(t.SubmitTime), SubmitTimeLocal: localStamp(t.SubmitTime),
			TransactionStatus: t.Status, InvoiceNumber: t.InvoiceNumber, FirstName: t.FirstName, LastName: t.LastName,
			AccountType: t.AccountType, AccountNumber: t.AccountNumber, SettleAmount: json.Number(amt),
			MarketType: "eCommerce", Product: "Card Not Present",
		})
	}
	if total == 0 {
		out.Messages.Message[0] = message{Code: "I00004", Text: "No records found."}
	}
	return out
}

func (s *Server) getUnsettledTransactionList(login, refID string, raw json.RawMessage) any {
	var opts listOptions
	if err := json.Unmarshal(raw, &opts); err != nil {
		return errorReply(refID, "E00003", "The request could not be decoded.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var txns []*Transaction
	for _, t := range s.txns {
		if t.LoginID != login || t.BatchID != "" || (opts.Status == "pendingApproval" && !t.held()) {
			continue
		}
		txns = append(txns, t)
	}
	return s.list(refID, opts, txns)
}

func (s *Server) getTransactionList(login, refID string, raw json.RawMessage) any {
	var opts listOptions
	if err := json.Unmarshal(raw, &opts); err != nil {
		return errorReply(refID, "E00003", "The request could not be decoded.")
	}
	if opts.BatchID == "" {
		// Without a batch id the API lists the last 30 days' unsettled
		// transactions; the simulator asks for one to keep things simple.
		return errorReply(refID, "E00003", "The simulator requires batchId in getTransactionListRequest.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var txns []*Transaction
	for _, t := range s.txns {
		if t.LoginID == login && t.BatchID == string(opts.BatchID) {
			txns = append(txns, t)
		}
	}
	return s.list(refID, opts, txns)
}

func (s *Server) getSettledBatchList(_, refID string, raw json.RawMessage) any {
	var req struct {
		FirstSettlementDate text `json:"firstSettlementDate"`
		LastSettlementDate  text `json:"lastSettlementDate"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return errorReply(refID, "E00003", "The request could not be decoded.")
	}
	now := s.opts.Now()
	first, last := now.Add(-24*time.Hour), now
	if req.FirstSettlementDate != "" {
		first, _ = parseDateTime(string(req.FirstSettlementDate))
		last = first.Add(24 * time.Hour)
	}
	if req.LastSettlementDate != "" {
		last, _ = parseDateTime(string(req.LastSettlementDate))
	}
	if last.Sub(first) > 31*24*time.Hour {
		return errorReply(refID, "E00015", "The date range can not exceed 31 days.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := settledBatchListResponse{RefID: refID, Messages: okMessages()}
	for _, b := range s.batches {
		if b.time.Before(first) || b.time.After(last) {
			continue
		}
		out.BatchList = append(out.BatchList, batchReply{
			BatchID: b.id, SettlementTimeUTC: utcStamp(b.time), SettlementTimeLocal: localStamp(b.time),
			SettlementState: "settledSuccessfully", PaymentMethod: "creditCard", MarketType: "eCommerce",
			Product: "Card Not Present",
		})
	}
	if len(out.BatchList) == 0 {
		out.Messages.Message[0] = message{Code: "I00004", Text: "No records found."}
	}
	return out
}

func (s *Server) updateHeldTransaction(login, refID string, raw json.RawMessage) any {
	var req struct {
		HeldTransactionRequest struct {
			Action     text `json:"action"`
			RefTransID text `json:"refTransId"`
		} `json:"heldTransactionRequest"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return errorReply(refID, "E00003", "The request could not be decoded.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := string(req.HeldTransactionRequest.RefTransID)
	if t := s.byID[id]; t == nil || t.LoginID != login {
		return failed(refID, 16)
	}
	if err := s.review(id, req.HeldTransactionRequest.Action == "approve"); err != nil {
		return errorReply(refID, "E00027", "The transaction is not held for review.")
	}
	return transactionReply(refID, s.byID[id])
}
