package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
)

// payrail nacha files lists files with status, entries, totals, hash,
// upload state and last error; --since keeps those created from a date
// (midnight in the cutoff zone) or an instant on.
func TestNachaFilesSinceShowsUploadStateAndLastError(t *testing.T) {
	env := testServices(t)
	ctx := context.Background()
	org := testenv.UniqueID("org_")
	if err := store.New(env.Pool, nil, canopy.Events{}).EnsureOrg(ctx, org, "Files org"); err != nil {
		t.Fatal(err)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	dest := fmt.Sprintf("9%08d", time.Now().UnixNano()%100_000_000)
	insert := func(id, status string, created time.Time, mod string, uploaded bool, lastErr string) {
		t.Helper()
		var uploadedAt *time.Time
		var remote *string
		if uploaded {
			uploadedAt, remote = &created, &id
		}
		var le *string
		if lastErr != "" {
			le = &lastErr
		}
		if _, err := env.Pool.Exec(ctx, `
			INSERT INTO nacha_files (file_id, org_id, status, file_name, cutoff_at, created_at, creation_date, creation_time,
			    file_id_modifier, immediate_destination, immediate_destination_name, immediate_origin, immediate_origin_name,
			    company_name, company_identification, company_entry_description, is_balanced, upload_required, batch_count,
			    entry_count, debit_total_cents, credit_total_cents, sha256, size_bytes, written_at, uploaded_at, remote_path,
			    last_error)
			VALUES ($1, $2, $3, $1 || '.ach', $4::timestamptz, $4, CAST($4::timestamptz AS date), '2100', $5, $6, 'FED', '231380104', 'BANK', 'CO', '1234567890',
			    'LOAN', false, true, 1, 3, 4500, 0, '\xab', 940, $4, $7, $8, $9)`,
			id, org, status, created, mod, dest, uploadedAt, remote, le); err != nil {
			t.Fatal(err)
		}
	}
	insert(org+"_a", "written", time.Date(2031, 3, 1, 12, 0, 0, 0, ny), "A", false, "nacha: dial SFTP 10.0.0.1:22: connection refused")
	insert(org+"_b", "written", time.Date(2031, 3, 1, 23, 30, 0, 0, ny), "B", false, "") // 2031-03-02 in UTC, not in New York
	insert(org+"_c", "uploaded", time.Date(2031, 3, 2, 0, 30, 0, 0, ny), "C", true, "")
	insert(org+"_d", "uploaded", time.Date(2031, 3, 2, 9, 0, 0, 0, ny), "D", true, "")

	cmdEnv := map[string]string{"PAYRAIL_DATABASE_URL": env.DatabaseURL, "PAYRAIL_ENCRYPTION_KEYS": "k1=" + testKey,
		"PAYRAIL_DATABASE_MAX_CONNS": fmt.Sprint(env.Reserve(t, 2, "payrail nacha files"))}
	mine := func(args ...string) []map[string]any {
		t.Helper()
		r := payrail(t, cmdEnv, append([]string{"nacha", "files", "--json"}, args...)...)
		if r.code != 0 {
			t.Fatalf("nacha files %v: exit %d: %s", args, r.code, r.stderr)
		}
		var out struct {
			Files []map[string]any `json:"files"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("nacha files %v printed %q: %v", args, r.stdout, err)
		}
		var got []map[string]any
		for _, f := range out.Files {
			if f["org_id"] == org {
				got = append(got, f)
			}
		}
		return got
	}
	ids := func(fs []map[string]any) string {
		var s []string
		for _, f := range fs {
			s = append(s, strings.TrimPrefix(f["file_id"].(string), org+"_"))
		}
		return strings.Join(s, ",")
	}

	if got := ids(mine("--since", "2031-03-02")); got != "d,c" {
		t.Errorf("--since 2031-03-02 (New York midnight): %s, want d,c", got)
	}
	if got := ids(mine("--since", "2031-03-02T04:00:00Z")); got != "d,c,b" {
		t.Errorf("--since an instant: %s, want d,c,b", got)
	}
	pending := mine("--since", "2031-03-01", "--status", "written")
	if ids(pending) != "b,a" {
		t.Fatalf("--status written: %s, want b,a", ids(pending))
	}
	a := pending[1]
	if a["upload"] != "pending" || !strings.Contains(fmt.Sprint(a["last_error"]), "connection refused") ||
		a["sha256"] != "ab" || a["entries"] != float64(3) || a["debit_total_cents"] != float64(4500) {
		t.Errorf("file a: %v", a)
	}
	if d := mine("--since", "2031-03-02")[0]; d["upload"] != "uploaded" || d["remote_path"] != org+"_d" {
		t.Errorf("file d: %v", d)
	}

	// Text output says the same.
	r := payrail(t, cmdEnv, "nacha", "files", "--since", "2031-03-01", "--status", "written")
	if r.code != 0 || !strings.Contains(r.stdout, org+"_a") || !strings.Contains(r.stdout, "upload pending") ||
		!strings.Contains(r.stdout, "last error: nacha: dial SFTP 10.0.0.1:22: connection refused") {
		t.Errorf("text output (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := payrail(t, cmdEnv, "nacha", "files", "--since", "yesterday"); r.code != 2 || !strings.Contains(r.stderr, "--since") {
		t.Errorf("--since yesterday: exit %d, %q", r.code, r.stderr)
	}
}
