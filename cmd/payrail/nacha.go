package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors/nacha"
)

const nachaUsage = `Usage:
  payrail nacha drop [--as-of DATE] [--json]
                                       run one cutoff now (or the last cutoff of DATE, today or
                                       earlier): finish interrupted files, cut, write, upload
  payrail nacha returns [--json] FILE...  ingest NACHA return / NOC files (each all or nothing)
  payrail nacha settle [--as-of DATE] [--json]
                                       move entries whose settlement window passed (by DATE) to VALID
  payrail nacha files [--status S] [--since D] [--json]
                                       list NACHA files: status, entries, totals, hash, upload, last error
                                       (D: YYYY-MM-DD in the cutoff zone, or an RFC 3339 instant)
  payrail nacha release-file FILE_ID   give a file stuck in building back to the next drop
  payrail nacha simulate-return --file DROPPED.ach --trace TRACE[,TRACE...] [--code R01] [--out FILE]
                                       write the return file a bank would send for those entries
                                       (for payrail dev and tests; ingest it with "returns")
`

var nachaSummary = map[string]string{
	"drop":         "Run one NACHA cutoff now: finish interrupted files, cut, write, upload.",
	"returns":      "Ingest NACHA return and NOC files, each all or nothing.",
	"settle":       "Move ACH entries whose settlement window passed to VALID.",
	"files":        "List NACHA files with their status, entries, totals, hash, upload state and last error.",
	"release-file": "Give the entries of a NACHA file stuck in building back to the next drop.",
}

// nachaConfig is the CANOPY_NACHA settings. Each comes from a PAYRAIL_NACHA_*
// variable and may be overridden by its flag (see config.settings); the
// worker and payrail nacha use the same settings.
type nachaConfig struct {
	DropDir        string // PAYRAIL_NACHA_DROP_DIR
	Timezone       string // PAYRAIL_NACHA_TIMEZONE
	Cutoffs        string // PAYRAIL_NACHA_CUTOFFS, comma-separated HH:MM
	SettlementDays int    // PAYRAIL_NACHA_SETTLEMENT_DAYS
	SFTPAddr       string // PAYRAIL_NACHA_SFTP_ADDR (host:port); empty: no upload
	SFTPUser       string // PAYRAIL_NACHA_SFTP_USER
	SFTPPassword   string // PAYRAIL_NACHA_SFTP_PASSWORD
	SFTPKeyFile    string // PAYRAIL_NACHA_SFTP_KEY_FILE: PEM private key
	SFTPHostKey    string // PAYRAIL_NACHA_SFTP_HOST_KEY: the server's key, authorized_keys format
	SFTPDir        string // PAYRAIL_NACHA_SFTP_DIR
	InboundDir     string // PAYRAIL_NACHA_INBOUND_DIR: polled for return and NOC files; empty: not polled
}

// processorConfig turns the settings into the processor's Config, without
// its services (Pool, Ring, Ledger, Logger, Registerer).
func (c *nachaConfig) processorConfig() (nacha.Config, error) {
	cal, err := nacha.NewCalendar(c.Timezone, cutoffWindows(c.Cutoffs))
	if err != nil {
		return nacha.Config{}, err
	}
	pc := nacha.Config{Calendar: cal, DropDir: c.DropDir, SettlementDays: c.SettlementDays}
	if c.SFTPAddr != "" {
		if c.SFTPHostKey == "" {
			return nacha.Config{}, errors.New("PAYRAIL_NACHA_SFTP_HOST_KEY is required with PAYRAIL_NACHA_SFTP_ADDR: the server's key is pinned, never trusted on first use")
		}
		s := &nacha.SFTPConfig{Addr: c.SFTPAddr, User: c.SFTPUser, Password: c.SFTPPassword, HostKey: c.SFTPHostKey,
			RemoteDir: c.SFTPDir}
		if c.SFTPKeyFile != "" {
			if s.PrivateKey, err = os.ReadFile(c.SFTPKeyFile); err != nil {
				return nacha.Config{}, fmt.Errorf("read PAYRAIL_NACHA_SFTP_KEY_FILE: %w", err)
			}
		}
		pc.SFTP = s
	}
	return pc, nil
}

// runNacha runs `payrail nacha drop|returns|settle`.
func runNacha(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, nachaUsage)
		return errUsage
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(nachaUsage)
		return nil
	}
	sub := args[0]
	switch sub {
	case "simulate-return":
		return simulateReturn(args[1:])
	case "drop", "returns", "settle", "files", "release-file":
	default:
		fmt.Fprintf(os.Stderr, "payrail nacha: unknown command %q\n\n%s", sub, nachaUsage)
		return errUsage
	}
	cl := newCmdline("nacha "+sub, roleNacha, os.LookupEnv)
	cl.summary = nachaSummary[sub]
	switch sub {
	case "returns":
		cl.args = "FILE..."
	case "release-file":
		cl.args = "FILE_ID"
	}
	fs, cfg := cl.fs, cl.cfg
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	var asOf, status, since *string
	var padShort *bool
	switch sub {
	case "drop", "settle":
		asOf = fs.String("as-of", "", "run as of this date (YYYY-MM-DD in the cutoff zone; today or earlier)")
	case "files":
		status = fs.String("status", "", "only files of this status: building, written, uploaded or released")
		since = fs.String("since", "", "only files created at or after this date (YYYY-MM-DD, from midnight in the cutoff zone) or instant (RFC 3339)")
	case "returns":
		padShort = fs.Bool("pad-short-records", false, "read records shorter than 94 bytes as if their trailing blanks were stripped (default: refuse the file)")
	}
	if err := cl.parse(args[1:]); err != nil {
		return err
	}
	nc := cfg.Nacha
	if sub == "returns" && fs.NArg() == 0 {
		fmt.Fprint(os.Stderr, "payrail nacha returns: name at least one FILE\n\n"+nachaUsage)
		return errUsage
	}
	if sub == "release-file" && fs.NArg() != 1 {
		fmt.Fprint(os.Stderr, "payrail nacha release-file: name one FILE_ID (see payrail nacha files --status building)\n\n"+nachaUsage)
		return errUsage
	}
	if status != nil {
		switch *status {
		case "", "building", "written", "uploaded", "released":
		default:
			fmt.Fprintf(os.Stderr, "payrail nacha files: --status %q: want building, written, uploaded or released\n", *status)
			return errUsage
		}
	}
	var sinceDate time.Time
	sinceIsDate := false
	if since != nil && *since != "" {
		if d, err := time.Parse(time.DateOnly, *since); err == nil {
			sinceDate, sinceIsDate = d, true
		} else if t, err := time.Parse(time.RFC3339, *since); err == nil {
			sinceDate = t
		} else {
			fmt.Fprintf(os.Stderr, "payrail nacha files: --since %q: want a date YYYY-MM-DD or an instant such as 2025-12-02T21:00:00-05:00\n", *since)
			return errUsage
		}
	}
	var asOfDate time.Time
	if asOf != nil && *asOf != "" {
		d, err := time.Parse(time.DateOnly, *asOf)
		if err != nil {
			fmt.Fprintf(os.Stderr, "payrail nacha %s: --as-of %q: want a date YYYY-MM-DD\n", sub, *asOf)
			return errUsage
		}
		asOfDate = d
	}

	log, err := cfg.logger()
	if err != nil {
		return err
	}
	if cfg.EncryptionKey == "" {
		return errors.New("PAYRAIL_ENCRYPTION_KEYS is not set: the NACHA processor opens sealed account numbers")
	}
	ring, err := keyring.Parse(cfg.EncryptionKey, cfg.EncryptionKID)
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	ledger := nacha.StoreLedger{Store: store.New(pool, ring, canopy.Events{})}
	pc, err := nc.processorConfig()
	if err != nil {
		return err
	}
	pc.Pool, pc.Ring, pc.Ledger, pc.Logger = pool, ring, ledger, log
	if padShort != nil {
		pc.PadShortReturnRecords = *padShort
	}
	p, err := nacha.New(pc)
	if err != nil {
		return err
	}

	out := os.Stdout
	switch sub {
	case "drop":
		var res nacha.DropResult
		if asOfDate.IsZero() {
			res, err = p.Drop(ctx)
		} else {
			res, err = p.DropAsOf(ctx, asOfDate)
		}
		printDrop(out, res, err, *asJSON)
		return err
	case "files":
		if sinceIsDate { // midnight of that date in the cutoff zone
			loc := p.Calendar().Location()
			sinceDate = time.Date(sinceDate.Year(), sinceDate.Month(), sinceDate.Day(), 0, 0, 0, 0, loc)
		}
		files, err := p.ListFiles(ctx, nacha.FileQuery{Status: *status, Since: sinceDate})
		if err != nil {
			return err
		}
		printFiles(out, files, *asJSON)
		return nil
	case "release-file":
		info, err := p.ReleaseFile(ctx, fs.Arg(0))
		if *asJSON {
			nachaJSON(out, struct {
				nacha.FileInfo
				Error string `json:"error,omitempty"`
			}{info, nachaErrText(err)})
		} else if err == nil {
			fmt.Fprintf(out, "released %s (%d entries): they are staged again and the next drop cuts them into a new file\n",
				info.FileID, info.Entries)
		}
		return err
	case "settle":
		var res nacha.SettleResult
		if asOfDate.IsZero() {
			res, err = p.Settle(ctx)
		} else {
			res, err = p.SettleAsOf(ctx, asOfDate)
		}
		if *asJSON {
			nachaJSON(out, struct {
				nacha.SettleResult
				Error string `json:"error,omitempty"`
			}{res, nachaErrText(err)})
		} else if err == nil {
			fmt.Fprintf(out, "settled %d entries effective on or before %s\n", res.Entries, res.SettledBy.Format(time.DateOnly))
		}
		return err
	default: // returns
		var reports []nacha.InboundReport
		var errs []error
		for _, path := range fs.Args() {
			rep, err := p.IngestReturnPath(ctx, path)
			if rep.FileName == "" {
				rep.FileName = path
			}
			reports = append(reports, rep)
			if err != nil {
				errs = append(errs, err)
			}
			if !*asJSON {
				printReturnReport(out, rep, err)
			}
		}
		err := errors.Join(errs...)
		if *asJSON {
			nachaJSON(out, struct {
				Files []nacha.InboundReport `json:"files"`
				Error string                `json:"error,omitempty"`
			}{reports, nachaErrText(err)})
		}
		if err != nil {
			return fmt.Errorf("%d of %d files not applied", len(errs), len(reports))
		}
		return nil
	}
}

func printDrop(w io.Writer, res nacha.DropResult, err error, asJSON bool) {
	if res.Files == nil {
		res.Files = []nacha.FileSummary{} // "files": [] for a cutoff with nothing due
	}
	if asJSON {
		nachaJSON(w, struct {
			nacha.DropResult
			Error string `json:"error,omitempty"`
		}{res, nachaErrText(err)})
		return
	}
	if len(res.Files) == 0 && err == nil {
		fmt.Fprintf(w, "cutoff %s: nothing due\n", res.CutoffAt.Format(time.RFC3339))
		return
	}
	for _, f := range res.Files {
		note := ""
		if f.Recovered {
			note = " (finished an interrupted drop)"
		}
		fmt.Fprintf(w, "%s %s%s\n  org %s, %d entries in %d batches, debits %s, credits %s, upload %s\n",
			f.Status, f.Path, note, f.OrgID, f.Entries, f.Batches, nachaDollars(f.DebitTotalCents),
			nachaDollars(f.CreditTotalCents), f.Upload)
		if f.Status != "building" {
			fmt.Fprintf(w, "  sha256 %s\n", f.SHA256)
		}
		if f.RemotePath != "" {
			fmt.Fprintf(w, "  uploaded to %s\n", f.RemotePath)
		}
		if f.Error != "" {
			fmt.Fprintf(w, "  FAILED: %s (the next drop retries it)\n", f.Error)
		}
	}
}

func printReturnReport(w io.Writer, rep nacha.InboundReport, err error) {
	switch {
	case err != nil:
		fmt.Fprintf(w, "%s: NOT APPLIED: %v\n", rep.FileName, err)
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
		if len(rep.Unmatched) > 0 {
			fmt.Fprintf(w, "  unmatched trace numbers: %s\n", strings.Join(rep.Unmatched, ", "))
		}
		return
	case rep.Duplicate:
		fmt.Fprintf(w, "%s: already ingested (sha256 %s); nothing applied\n", rep.FileName, rep.SHA256)
		return
	}
	fmt.Fprintf(w, "%s: applied %d returns, %d NOCs\n", rep.FileName, len(rep.Returns), len(rep.NOCs))
	for _, r := range rep.Returns {
		fmt.Fprintf(w, "  %s %s %s/%s: %s", r.ReturnCode, r.TraceNumber, r.AccountID, r.LineItemID, r.Outcome)
		if r.ReversalLineItemID != "" {
			fmt.Fprintf(w, " (reversal %s)", r.ReversalLineItemID)
		}
		fmt.Fprintln(w)
	}
	for _, n := range rep.NOCs {
		fmt.Fprintf(w, "  %s %s %s/%s: applied=%v\n", n.ChangeCode, n.TraceNumber, n.AccountID, n.LineItemID, n.Applied)
	}
}

func nachaJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func nachaErrText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// nachaDollars renders cents for people: 123456 → "$1,234.56".
func nachaDollars(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	whole := fmt.Sprint(c / 100)
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return fmt.Sprintf("%s$%s.%02d", sign, b.String(), c%100)
}

// simulateReturn writes a return file for entries of a dropped file.
func simulateReturn(args []string) error {
	fs := flag.NewFlagSet("nacha simulate-return", flag.ContinueOnError)
	file := fs.String("file", "", "the dropped NACHA file (required)")
	traces := fs.String("trace", "", "trace numbers of the entries to return, comma-separated (required)")
	code := fs.String("code", "R01", "return reason code")
	outPath := fs.String("out", "", "where to write the return file; default standard output")
	if err := parseFlags(fs, args, nil); err != nil {
		return err
	}
	if *file == "" || *traces == "" {
		fmt.Fprint(os.Stderr, "payrail nacha simulate-return: --file and --trace are required\n\n"+nachaUsage)
		return errUsage
	}
	original, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	codes := map[string]string{}
	for _, t := range strings.Split(*traces, ",") {
		if t = strings.TrimSpace(t); t != "" {
			codes[t] = *code
		}
	}
	// The header is dated in the cutoff zone, as drops are.
	loc, err := nachaZone(os.LookupEnv)
	if err != nil {
		return err
	}
	content, err := nacha.SimulateReturns(original, codes, time.Now().In(loc))
	if err != nil {
		return err
	}
	if *outPath == "" {
		_, err = os.Stdout.Write(content)
		return err
	}
	if err := os.WriteFile(*outPath, content, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d return(s) with code %s\n", *outPath, len(codes), *code)
	return nil
}

// nachaZone is the cutoff zone (PAYRAIL_NACHA_TIMEZONE, default
// America/New_York) for commands that need no database.
func nachaZone(lookup func(string) (string, bool)) (*time.Location, error) {
	name, ok := lookup("PAYRAIL_NACHA_TIMEZONE")
	if !ok || name == "" {
		name = "America/New_York"
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("PAYRAIL_NACHA_TIMEZONE=%q: %w", name, err)
	}
	return loc, nil
}

func printFiles(w io.Writer, files []nacha.FileInfo, asJSON bool) {
	if asJSON {
		nachaJSON(w, struct {
			Files []nacha.FileInfo `json:"files"`
		}{files})
		return
	}
	if len(files) == 0 {
		fmt.Fprintln(w, "no NACHA files")
		return
	}
	for _, f := range files {
		fmt.Fprintf(w, "%s %s  org %s  created %s  cutoff %s\n  %d entries in %d batches, debits %s, credits %s, upload %s\n",
			f.Status, f.FileID, f.OrgID, f.CreatedAt.Format(time.RFC3339), f.CutoffAt.Format(time.RFC3339), f.Entries, f.Batches,
			nachaDollars(f.DebitTotalCents), nachaDollars(f.CreditTotalCents), f.Upload)
		if f.RemotePath != "" {
			fmt.Fprintf(w, "  uploaded to %s\n", f.RemotePath)
		}
		fmt.Fprintf(w, "  %s\n", f.Path)
		if f.SHA256 != "" {
			fmt.Fprintf(w, "  sha256 %s\n", f.SHA256)
		}
		if f.LastError != "" {
			fmt.Fprintf(w, "  last error: %s\n", f.LastError)
		}
		if f.Status == "building" {
			fmt.Fprintf(w, "  (if every drop fails on it: payrail nacha release-file %s)\n", f.FileID)
		}
	}
}
