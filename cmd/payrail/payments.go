package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/payments"
	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet"
)

const paymentsUsage = `Usage:
  payrail payments list --status dead|held|stuck|queued [--org ORG] [--older-than D] [--limit N] [--json]
                        attempts by status, oldest last change first; stuck: processing whose last
                        delivery began, or queued with no delivery, more than --older-than ago (default 5m)
  payrail payments show ID [--org ORG] [--account ACCOUNT] [--json]
                        a payment (ID: line item id or attempt id): the line item as the API shows it,
                        its attempt, ACH entry, transitions and the outbox rows still present
  payrail payments redrive ID [--org ORG] [--account ACCOUNT] [--reason TEXT] [--actor NAME] [--json]
                        re-execute a dead attempt safely: ask the processor first (Authorize.Net);
                        record what happened, or create a new attempt and job if nothing did

Needs PostgreSQL (PAYRAIL_DATABASE_URL); redrive also the keyring (PAYRAIL_ENCRYPTION_KEYS) and
Authorize.Net credentials (PAYRAIL_AUTHNET_*) to look card payments up. No card or bank account
number is ever printed.
`

var paymentsSummary = map[string]string{
	"list":    "List payment attempts by status (dead, held, stuck, queued), oldest last change first.",
	"show":    "Show everything recorded about one payment: line item, attempt, ACH entry, transitions, outbox rows.",
	"redrive": "Re-execute a dead attempt: ask its processor first, record what happened or create a new attempt and job.",
}

// defaultStuckAge is how long a processing delivery or an undelivered
// queued attempt waits before payrail payments list --status stuck shows
// it: well past a delivery's lease (the call timeout plus 5 s) and the
// relay's and consumers' normal delays.
const defaultStuckAge = 5 * time.Minute

// runPayments runs `payrail payments list|show|redrive`.
func runPayments(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, paymentsUsage)
		return errUsage
	}
	sub := args[0]
	switch sub {
	case "-h", "-help", "--help", "help":
		fmt.Print(paymentsUsage)
		return nil
	case "list", "show", "redrive":
	default:
		fmt.Fprintf(os.Stderr, "payrail payments: unknown command %q\n\n%s", sub, paymentsUsage)
		return errUsage
	}
	r := rolePayments
	if sub == "redrive" {
		r = roleRedrive
	}
	cl := newCmdline("payments "+sub, r, os.LookupEnv)
	cl.summary = paymentsSummary[sub]
	fs, cfg := cl.fs, cl.cfg
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	org := fs.String("org", "", "only this org")
	var status, account, reason, actor *string
	var olderThan *time.Duration
	var limit *int
	switch sub {
	case "list":
		status = fs.String("status", "", "dead, held, stuck or queued (required)")
		olderThan = fs.Duration("older-than", -1, "only attempts whose last change is older than this (stuck: default 5m; others: 0)")
		limit = fs.Int("limit", 100, "at most this many attempts")
	default:
		cl.args = "ID"
		account = fs.String("account", "", "the line item's account, when its id is used in several accounts")
	}
	if sub == "redrive" {
		reason = fs.String("reason", "", "why, recorded on the audit transition (e.g. a ticket)")
		actor = fs.String("actor", "", `who, recorded as "operator:NAME" (default $USER)`)
	}
	rest, id := args[1:], ""
	if sub != "list" {
		rest, id = splitID(rest)
	}
	if err := cl.parse(rest); err != nil {
		return err
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	} else if fs.NArg() > 0 {
		id = ""
	}
	var q store.AttemptQuery
	if sub == "list" {
		q = store.AttemptQuery{Status: *status, OrgID: *org, OlderThan: *olderThan, Limit: *limit}
		switch q.Status {
		case "dead", "held", "queued", "stuck":
		default:
			fmt.Fprintf(os.Stderr, "payrail payments list: --status %q: want dead, held, stuck or queued\n", q.Status)
			return errUsage
		}
		if q.OlderThan < 0 {
			q.OlderThan = 0
			if q.Status == "stuck" {
				q.OlderThan = defaultStuckAge
			}
		}
		if q.Limit < 1 {
			fmt.Fprintf(os.Stderr, "payrail payments list: --limit %d: want at least 1\n", q.Limit)
			return errUsage
		}
	} else if id == "" {
		fmt.Fprintf(os.Stderr, "payrail payments %s: name one ID (a line item id or an attempt id)\n\n%s", sub, paymentsUsage)
		return errUsage
	}

	log, err := cfg.logger()
	if err != nil {
		return err
	}
	var ring *keyring.Ring
	if sub == "redrive" {
		if cfg.EncryptionKey == "" {
			return errors.New("PAYRAIL_ENCRYPTION_KEYS is not set: a redrive seals the new attempt's job")
		}
		if ring, err = keyring.Parse(cfg.EncryptionKey, cfg.EncryptionKID); err != nil {
			return err
		}
	}
	pool, err := openPool(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool, ring, canopy.Events{})
	out := os.Stdout

	switch sub {
	case "list":
		as, err := st.ListAttempts(ctx, q)
		if err != nil {
			return err
		}
		printAttemptList(out, q, as, time.Now(), *asJSON)
		return nil
	case "show":
		li, err := findPayment(ctx, st, *org, *account, id)
		if err != nil {
			return err
		}
		v, err := paymentView(ctx, st, li)
		if err != nil {
			return err
		}
		printPayment(out, v, time.Now(), *asJSON)
		return nil
	}

	// redrive
	li, err := findPayment(ctx, st, *org, *account, id)
	if err != nil {
		return err
	}
	if li.Attempt == nil {
		return fmt.Errorf("line item %s (org %s, account %s) is not an executed payment: it has no attempt to redrive",
			li.LineItemID, li.OrgID, li.AccountID)
	}
	who := *actor
	if who == "" {
		who = os.Getenv("USER")
	}
	if who == "" {
		return errors.New("say who redrives: --actor NAME (or set $USER)")
	}
	m, err := authorizenet.NewMerchants(authorizenet.MerchantsConfig{
		Base: authorizenet.Config{Endpoint: cfg.AuthNetEndpoint, LoginID: cfg.AuthNetLoginID,
			TransactionKey: cfg.AuthNetTransactionKey, Timeout: cfg.AuthNetTimeout},
		Lookup: func(ctx context.Context, orgID string) (string, string, error) {
			login, key, err := st.AuthorizeNetCredentials(ctx, orgID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				return "", "", authorizenet.ErrNoOrgCredentials
			case err != nil && !errors.Is(err, store.ErrSealed):
				return "", "", authorizenet.TemporaryLookupError(err)
			}
			return login, key, err
		},
		Logger: log})
	if err != nil {
		return fmt.Errorf("AUTHORIZE_NET client: %w", err)
	}
	svc := payments.New(st, ring)
	res, err := svc.Redrive(ctx, payments.Redrive{
		Attempt: store.AttemptRef{OrgID: li.OrgID, AttemptID: li.Attempt.AttemptID},
		Actor:   "operator:" + strings.TrimPrefix(who, "operator:"), Reason: *reason,
		Resolvers: map[string]processors.Resolver{processors.AuthorizeNet: authorizenet.NewOrgProcessor(m, log)},
	}, time.Now())
	printRedrive(out, li, res, err, *asJSON)
	return err
}

// splitID takes the ID out of show's and redrive's arguments, so flags
// may come before or after it: the first argument that is neither a flag
// nor a flag's value.
func splitID(args []string) (rest []string, id string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return append(append([]string{}, args[:i]...), args[i+1:]...), a
		}
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && name != "json" && name != "h" && name != "help" {
			i++ // the flag's value
		}
	}
	return args, ""
}

// findPayment finds the line item named by id: a line item id (within
// org and account when given) or an attempt id. An id that names several
// line items is refused with the candidates.
func findPayment(ctx context.Context, st *store.Store, org, account, id string) (store.LineItem, error) {
	lis, err := st.FindLineItems(ctx, org, id)
	if err != nil {
		return store.LineItem{}, err
	}
	var match []store.LineItem
	for _, li := range lis {
		if account == "" || li.AccountID == account {
			match = append(match, li)
		}
	}
	if len(match) == 0 {
		as, err := st.FindAttempts(ctx, org, id)
		if err != nil {
			return store.LineItem{}, err
		}
		for _, a := range as {
			if a.AttemptID != id {
				continue
			}
			if account != "" && a.AccountID != account {
				return store.LineItem{}, fmt.Errorf("attempt %s belongs to line item %s of account %s, not to account %s",
					id, a.LineItemID, a.AccountID, account)
			}
			return st.LineItem(ctx, a.OrgID, a.AccountID, a.LineItemID)
		}
	}
	switch len(match) {
	case 0:
		where := ""
		if org != "" {
			where = " in org " + org
		}
		return store.LineItem{}, fmt.Errorf("no line item or attempt %q%s (a redriven attempt is replaced by its new attempt: show the line item)", id, where)
	case 1:
		return match[0], nil
	}
	var names []string
	for _, li := range match {
		names = append(names, "org "+li.OrgID+" account "+li.AccountID)
	}
	return store.LineItem{}, fmt.Errorf("line item id %q is used by %d line items (%s): name one with --org and --account",
		id, len(match), strings.Join(names, "; "))
}

// attemptRow is an attempt as list prints it.
type attemptRow struct {
	OrgID          string     `json:"org_id"`
	AccountID      string     `json:"account_id"`
	LineItemID     string     `json:"line_item_id"`
	LineItemStatus string     `json:"line_item_status"`
	AttemptID      string     `json:"attempt_id"`
	Processor      string     `json:"processor"`
	PaymentType    string     `json:"payment_type"`
	Origin         string     `json:"origin"`
	AttemptStatus  string     `json:"attempt_status"`
	AmountCents    int64      `json:"amount_cents"`
	Deliveries     int        `json:"deliveries"`
	TransactionID  string     `json:"transaction_id,omitempty"`
	NachaFileID    string     `json:"nacha_file_id,omitempty"`
	TraceNumber    string     `json:"trace_number,omitempty"`
	ResultCode     string     `json:"last_error_code,omitempty"`
	ResultMessage  string     `json:"last_error_message,omitempty"`
	Instrument     string     `json:"instrument,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	LastDeliveryAt *time.Time `json:"last_delivery_at,omitempty"`
	AgeSeconds     int64      `json:"age_seconds"`
	IdleSeconds    int64      `json:"idle_seconds"`
}

func rowOf(a store.OpsAttempt, now time.Time) attemptRow {
	r := attemptRow{OrgID: a.OrgID, AccountID: a.AccountID, LineItemID: a.LineItemID, LineItemStatus: string(a.LineItemStatus),
		AttemptID: a.AttemptID, Processor: a.Processor, PaymentType: a.PaymentType, Origin: a.Origin,
		AttemptStatus: string(a.Status), AmountCents: a.AmountCents, Deliveries: a.Deliveries, TransactionID: a.TransactionID,
		NachaFileID: a.NachaFileID, TraceNumber: a.TraceNumber, ResultCode: a.ResultCode, ResultMessage: a.ResultMessage,
		Instrument: instrumentText(a.Attempt), CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt, LastDeliveryAt: a.LastDeliveryAt,
		AgeSeconds: int64(now.Sub(a.CreatedAt).Seconds()), IdleSeconds: int64(now.Sub(a.UpdatedAt).Seconds())}
	return r
}

// instrumentText is the masked payment method: kind, brand, last four.
func instrumentText(a store.Attempt) string {
	if a.InstrumentKind == "" {
		return ""
	}
	s := a.InstrumentKind
	if a.InstrumentBrand != "" {
		s += " " + a.InstrumentBrand
	}
	if a.InstrumentLastFour != "" {
		s += " …" + a.InstrumentLastFour
	}
	return s
}

func age(d time.Duration) string {
	if d < time.Minute {
		return d.Truncate(time.Second).String()
	}
	if d < 48*time.Hour {
		return d.Truncate(time.Minute).String()
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func printAttemptList(w io.Writer, q store.AttemptQuery, as []store.OpsAttempt, now time.Time, asJSON bool) {
	rows := make([]attemptRow, 0, len(as))
	for _, a := range as {
		rows = append(rows, rowOf(a, now))
	}
	if asJSON {
		writeJSON(w, struct {
			Status    string       `json:"status"`
			OlderThan string       `json:"older_than"`
			Order     string       `json:"order"`
			Attempts  []attemptRow `json:"attempts"`
		}{q.Status, q.OlderThan.String(), "oldest last change first", rows})
		return
	}
	if len(rows) == 0 {
		fmt.Fprintf(w, "no %s attempts (older than %s)\n", q.Status, q.OlderThan)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORG\tACCOUNT\tLINE ITEM\tATTEMPT\tPROCESSOR\tSTATUS\tDELIVERIES\tAGE\tIDLE\tLAST ERROR")
	for _, r := range rows {
		lastErr := strings.TrimSpace(r.ResultCode + " " + r.ResultMessage)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.OrgID, r.AccountID, r.LineItemID, r.AttemptID,
			r.Processor, r.AttemptStatus, r.Deliveries, age(time.Duration(r.AgeSeconds)*time.Second),
			age(time.Duration(r.IdleSeconds)*time.Second), lastErr)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d attempts, oldest last change first (IDLE: since the last change)\n", len(rows))
}

// paymentShow is everything payrail payments show prints.
type paymentShow struct {
	LineItem    canopy.LineItem  `json:"line_item"`
	OrgID       string           `json:"org_id"`
	Attempt     *attemptRow      `json:"attempt"`
	NachaEntry  *nachaEntryView  `json:"nacha_entry,omitempty"`
	Transitions []transitionView `json:"transitions"`
	Outbox      []outboxView     `json:"outbox"`
	Note        string           `json:"note"`
	li          store.LineItem
	transitions []store.TransitionRecord
}

type nachaEntryView struct {
	Status             string `json:"status"`
	FileID             string `json:"file_id,omitempty"`
	TraceNumber        string `json:"trace_number,omitempty"`
	EffectiveEntryDate string `json:"effective_entry_date"`
	ReturnCode         string `json:"return_code,omitempty"`
}

type transitionView struct {
	From        *string   `json:"from_status"`
	To          string    `json:"to_status"`
	AmountCents int64     `json:"amount_cents"`
	Actor       string    `json:"actor"`
	Reason      string    `json:"reason"`
	At          time.Time `json:"at"`
}

type outboxView struct {
	MsgID       string     `json:"msg_id"`
	Subject     string     `json:"subject"`
	Kind        string     `json:"kind"` // job or event
	HasPayload  bool       `json:"has_payload"`
	CreatedAt   time.Time  `json:"created_at"`
	PublishedAt *time.Time `json:"published_at"`
}

const eventsNote = "published events live in the PAYRAIL_EVENTS stream (payrail events --status S); " +
	"outbox rows are deleted once published, and an attempt's sealed job when its result commits"

func paymentView(ctx context.Context, st *store.Store, li store.LineItem) (paymentShow, error) {
	v := paymentShow{LineItem: canopy.Render(li), OrgID: li.OrgID, Note: eventsNote, li: li}
	var jobs []string
	if a := li.Attempt; a != nil {
		as, err := st.FindAttempts(ctx, li.OrgID, a.AttemptID)
		if err != nil {
			return v, err
		}
		for _, oa := range as {
			if oa.AttemptID == a.AttemptID {
				r := rowOf(oa, time.Now())
				v.Attempt = &r
				jobs = append(jobs, oa.JobMsgID)
			}
		}
		if a.Processor == processors.CanopyNACHA {
			e, err := st.AttemptNachaEntry(ctx, li.OrgID, a.AttemptID)
			if err != nil {
				return v, err
			}
			if e != nil {
				v.NachaEntry = &nachaEntryView{Status: e.Status, FileID: e.FileID, TraceNumber: e.TraceNumber,
					EffectiveEntryDate: e.EffectiveEntryDate.Format(time.DateOnly), ReturnCode: e.ReturnCode}
			}
		}
	}
	trs, err := st.Transitions(ctx, li.OrgID, li.AccountID, li.LineItemID)
	if err != nil {
		return v, err
	}
	v.transitions = trs
	v.Transitions = []transitionView{}
	for _, t := range trs {
		tv := transitionView{To: string(t.To), AmountCents: t.AmountCents, Actor: t.Actor, Reason: t.Reason, At: t.At}
		if t.From != "" {
			f := string(t.From)
			tv.From = &f
		}
		v.Transitions = append(v.Transitions, tv)
	}
	rows, err := st.LineItemOutbox(ctx, li.OrgID, li.LineItemID, jobs)
	if err != nil {
		return v, err
	}
	v.Outbox = []outboxView{}
	for _, r := range rows {
		kind := "event"
		if strings.HasPrefix(r.Subject, "jobs.") {
			kind = "job"
		}
		v.Outbox = append(v.Outbox, outboxView{MsgID: r.MsgID, Subject: r.Subject, Kind: kind, HasPayload: r.HasPayload,
			CreatedAt: r.CreatedAt, PublishedAt: r.PublishedAt})
	}
	return v, nil
}

func printPayment(w io.Writer, v paymentShow, now time.Time, asJSON bool) {
	if asJSON {
		writeJSON(w, v)
		return
	}
	li := v.li
	fmt.Fprintf(w, "line item %s  org %s  account %s\n", li.LineItemID, li.OrgID, li.AccountID)
	fmt.Fprintf(w, "  %s %s, %d cents, created %s via %s, effective %s\n", li.Type, li.Status, li.AmountCents,
		li.CreatedAt.Format(time.RFC3339), li.Origin, li.EffectiveAt.Format(time.RFC3339))
	if a := v.Attempt; a != nil {
		fmt.Fprintf(w, "attempt %s  %s %s  status %s  deliveries %d\n", a.AttemptID, a.Processor, a.PaymentType,
			a.AttemptStatus, a.Deliveries)
		fmt.Fprintf(w, "  created %s (%s ago), last change %s ago", a.CreatedAt.Format(time.RFC3339),
			age(now.Sub(a.CreatedAt)), age(now.Sub(a.UpdatedAt)))
		if a.LastDeliveryAt != nil {
			fmt.Fprintf(w, ", last delivery %s ago", age(now.Sub(*a.LastDeliveryAt)))
		}
		fmt.Fprintln(w)
		if a.Instrument != "" {
			fmt.Fprintf(w, "  instrument: %s\n", a.Instrument)
		}
		if a.ResultCode != "" || a.ResultMessage != "" {
			fmt.Fprintf(w, "  result: %s %s\n", a.ResultCode, a.ResultMessage)
		}
		if a.TransactionID != "" {
			fmt.Fprintf(w, "  transaction id: %s\n", a.TransactionID)
		}
		if a.NachaFileID != "" || a.TraceNumber != "" {
			fmt.Fprintf(w, "  NACHA file %s, trace %s\n", a.NachaFileID, a.TraceNumber)
		}
	} else {
		fmt.Fprintln(w, "no attempt: not an executed payment")
	}
	if e := v.NachaEntry; e != nil {
		fmt.Fprintf(w, "ACH entry: %s, effective %s", e.Status, e.EffectiveEntryDate)
		if e.FileID != "" {
			fmt.Fprintf(w, ", file %s, trace %s", e.FileID, e.TraceNumber)
		}
		if e.ReturnCode != "" {
			fmt.Fprintf(w, ", returned %s", e.ReturnCode)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "transitions:")
	for _, t := range v.transitions {
		from := string(t.From)
		if from == "" {
			from = "(created)"
		}
		fmt.Fprintf(w, "  %s  %s → %s  %d cents  by %s: %s\n", t.At.Format(time.RFC3339), from, t.To, t.AmountCents, t.Actor, t.Reason)
	}
	fmt.Fprintln(w, "outbox rows still present:")
	if len(v.Outbox) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, o := range v.Outbox {
		pub := "unpublished"
		if o.PublishedAt != nil {
			pub = "published " + o.PublishedAt.UTC().Format(time.RFC3339)
		}
		extra := ""
		if o.Kind == "job" {
			extra = ", sealed job removed (nothing to publish)"
			if o.HasPayload {
				extra = ", sealed job kept"
			}
		}
		fmt.Fprintf(w, "  %s %s  %s  created %s, %s%s\n", o.Kind, o.MsgID, o.Subject, o.CreatedAt.Format(time.RFC3339), pub, extra)
	}
	fmt.Fprintln(w, "note:", eventsNote)
	fmt.Fprintln(w, "line item as the API shows it:")
	b, _ := json.MarshalIndent(v.LineItem, "  ", "  ")
	fmt.Fprintf(w, "  %s\n", b)
}

func printRedrive(w io.Writer, li store.LineItem, res payments.RedriveResult, err error, asJSON bool) {
	var re *payments.RefusedError
	if asJSON {
		out := map[string]any{"org_id": li.OrgID, "account_id": li.AccountID, "line_item_id": li.LineItemID,
			"dead_attempt_id": li.Attempt.AttemptID}
		if res.Processor.Outcome != "" {
			out["processor_answer"] = map[string]string{"outcome": string(res.Processor.Outcome), "code": res.Processor.Code,
				"message": res.Processor.Message, "transaction_id": res.Processor.TransactionID}
		}
		switch {
		case errors.As(err, &re):
			out["action"], out["refused"] = "refused", re.Reason
		case err != nil:
			out["action"], out["error"] = "failed", err.Error()
		default:
			out["action"], out["line_item"] = res.Action, canopy.Render(res.LineItem)
			if res.NewAttemptID != "" {
				out["new_attempt_id"], out["job_msg_id"] = res.NewAttemptID, "job_"+res.NewAttemptID
				out["without_card_code"] = res.WithoutCardCode
			}
		}
		writeJSON(w, out)
		return
	}
	if err != nil {
		return // the error is printed by main
	}
	switch res.Action {
	case payments.RedriveRecovered:
		a := res.LineItem.Attempt
		fmt.Fprintf(w, "recovered: %s says dead attempt %s was %s", a.Processor, res.DeadAttemptID, res.Processor.Outcome)
		if res.Processor.TransactionID != "" {
			fmt.Fprintf(w, " (transaction %s)", res.Processor.TransactionID)
		}
		fmt.Fprintf(w, "\nline item %s is now %s, attempt %s; nothing was executed again\n", li.LineItemID, res.LineItem.Status, a.Status)
	case payments.RedriveRequeued:
		fmt.Fprintf(w, "redriven: dead attempt %s replaced by attempt %s (queued); line item %s is PENDING\n",
			res.DeadAttemptID, res.NewAttemptID, li.LineItemID)
		if res.Processor.Code != "" {
			fmt.Fprintf(w, "%s was asked first: %s\n", li.Processor, res.Processor.Message)
		}
		fmt.Fprintf(w, "job job_%s is in the outbox; a relay (payrail relay, or payrail api) publishes it to the workers\n", res.NewAttemptID)
		if res.WithoutCardCode {
			fmt.Fprintln(w, "the card is charged without card-code (CVV) verification: payrail never stores the CVV, "+
				"as for every job the relay publishes")
		}
	}
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
