// Package nacha is payrail's CANOPY_NACHA processor: it stages ACH debits,
// cuts them into NACHA files on a banking-day calendar, drops the files
// crash-safely into a directory (and optionally onto an SFTP server),
// settles entries once their return window passes, and applies the
// returns and notifications of change the bank sends back.
//
// PostgreSQL is the system of record for every step. Each step is a state
// transition recorded in this package's tables (schema/003_nacha.sql) in
// the same transaction as the line item change it causes, made through the
// Ledger interface the store implements. Files are built with
// github.com/moov-io/ach under its default (strict) validation and are a
// pure function of their database rows, so a drop interrupted at any point
// is finished by the next run with byte-identical output.
//
// Entry lifecycle (nacha_entries.status; dropped is not stored: it is a
// batched entry whose file is written or uploaded):
//
//	staged ──cutoff──▶ batched ──file durable──▶ (dropped) ──window passed──▶ settled
//	   │                                             │                            │
//	   └──reversal──▶ withdrawn                      └──return──▶ returned ◀──return (reversal line item)
//
// A reversal of a debit already in a file, or settled, stages a refund
// credit: an entry of its own (direction credit) with the same lifecycle,
// held staged until its debit settles (README.md, "Reversals").
package nacha

import (
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/processors"
)

// Name is the payment_processor_name this package serves.
const Name = processors.CanopyNACHA

// DefaultSettlementDays is how many banking days after the effective entry
// date an entry without a return is considered settled (docs/states.md).
const DefaultSettlementDays = 2

// Config is what a Processor needs. Pool, Ring and Ledger are required.
type Config struct {
	Pool   *pgxpool.Pool
	Ring   *keyring.Ring
	Ledger Ledger
	// Calendar holds the cutoff windows; nil means 21:00 America/New_York.
	Calendar *Calendar
	// DropDir receives the NACHA files; created if missing. Required for
	// Drop.
	DropDir string
	// SFTP, when set, receives a copy of every dropped file.
	SFTP *SFTPConfig
	// SettlementDays overrides DefaultSettlementDays when > 0.
	SettlementDays int
	Logger         *slog.Logger
	// Registerer receives the processor's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now. Tests pin it.
	Now func() time.Time
	// PadShortReturnRecords reads return/NOC files whose records lost
	// their trailing blanks (shorter than 94 bytes) by padding them. Off
	// by default: a short record is refused, with the whole file.
	PadShortReturnRecords bool
}

// Processor implements processors.Processor for CANOPY_NACHA and runs the
// cutoff, settlement and return jobs. It is safe for concurrent use.
type Processor struct {
	pool           *pgxpool.Pool
	ring           *keyring.Ring
	ledger         Ledger
	cal            *Calendar
	dropDir        string
	sftp           *SFTPConfig
	settlementDays int
	log            *slog.Logger
	metrics        *metrics
	now            func() time.Time

	// hook, when set (tests only), is called between the steps of a drop
	// and may fail it, to simulate a crash at that point.
	hook func(step DropStep, fileID string) error
	// pageSize is how many entries are read from PostgreSQL at a time;
	// chunk is how many line items one ledger call or settlement
	// transaction carries. Tests shrink both to cross their boundaries.
	pageSize int
	chunk    int
	// recordChunk: entries per announcement transaction of a drop
	// (announce); 0 means defaultRecordChunk.
	recordChunk int
	// assignChunk: entries per claim row of a file, and so per
	// materialization transaction; 0 means defaultAssignChunk.
	assignChunk int
	// padShortRecords: Config.PadShortReturnRecords.
	padShortRecords bool
	// limits are the NACHA field limits the file builder splits batches
	// and files by; tests shrink them.
	limits limits
}

// New returns a Processor for cfg and registers its metrics.
func New(cfg Config) (*Processor, error) {
	if cfg.Pool == nil || cfg.Ring == nil || cfg.Ledger == nil {
		return nil, errors.New("nacha: Pool, Ring and Ledger are required")
	}
	cal := cfg.Calendar
	if cal == nil {
		var err error
		if cal, err = NewCalendar("", nil); err != nil {
			return nil, err
		}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	p := &Processor{
		pool: cfg.Pool, ring: cfg.Ring, ledger: cfg.Ledger, cal: cal, dropDir: cfg.DropDir, sftp: cfg.SFTP,
		settlementDays: cfg.SettlementDays, log: cfg.Logger, metrics: m, now: cfg.Now, pageSize: 5000, chunk: 1000,
		padShortRecords: cfg.PadShortReturnRecords, limits: nachaLimits,
	}
	if p.settlementDays <= 0 {
		p.settlementDays = DefaultSettlementDays
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.log = p.log.With("processor", Name)
	return p, nil
}

// Name returns CANOPY_NACHA.
func (p *Processor) Name() string { return Name }

// Calendar returns the cutoff calendar, for schedulers.
func (p *Processor) Calendar() *Calendar { return p.cal }

func (p *Processor) clock() time.Time { return p.now().UTC() }
