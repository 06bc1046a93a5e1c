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
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
)

const clientsUsage = `usage:
  payrail clients create --org ORG --name NAME [--role ROLE] [--create-org] [--json]
                                 create an API client; prints its secret once
  payrail clients list [--org ORG] [--json]
  payrail clients disable CLIENT_ID [--json]        revoke its tokens; refuse new ones
  payrail clients enable CLIENT_ID [--json]         allow new tokens again
  payrail clients rotate-secret CLIENT_ID [--json]  new secret, printed once; revokes its tokens
  payrail clients set-role CLIENT_ID ROLE [--json]  revokes its tokens

Roles: admin, servicing, operations, readonly. Revocations reach running API
processes within a few seconds (their client cache's lifetime).
`

// clientCredentials is what creating a client or rotating its secret
// prints: the only time the secret is shown.
type clientCredentials struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	OrgID        string `json:"org_id"`
	Role         string `json:"role"`
}

// clientInfo is a client as list and the state-changing commands print it.
type clientInfo struct {
	ClientID          string    `json:"client_id"`
	OrgID             string    `json:"org_id"`
	Name              string    `json:"name"`
	Role              string    `json:"role"`
	Disabled          bool      `json:"disabled"`
	CredentialVersion int64     `json:"credential_version"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

func infoOf(c store.Client) clientInfo {
	return clientInfo{ClientID: c.ClientID, OrgID: c.OrgID, Name: c.Name, Role: c.Role, Disabled: c.Disabled,
		CredentialVersion: c.Version, CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC()}
}

func createClient(ctx context.Context, st *store.Store, org, name, role string) (clientCredentials, error) {
	secret, err := auth.NewSecret()
	if err != nil {
		return clientCredentials{}, err
	}
	hash, err := auth.HashSecret(secret)
	if err != nil {
		return clientCredentials{}, err
	}
	c := store.Client{ClientID: store.NewID(auth.ClientIDPrefix), OrgID: org, Name: name, Role: role, SecretHash: hash}
	if err := st.CreateClient(ctx, c); err != nil {
		return clientCredentials{}, err
	}
	return clientCredentials{ClientID: c.ClientID, ClientSecret: secret, OrgID: org, Role: role}, nil
}

var errNoSuchClient = errors.New("no such client")

// clientsCreate creates a client in org, which must exist unless createOrg
// is set: a mistyped org id must not quietly become a new org.
func clientsCreate(ctx context.Context, st *store.Store, org, name, role string, createOrg bool) (clientCredentials, error) {
	if !auth.ValidRole(role) {
		return clientCredentials{}, fmt.Errorf("--role must be admin, servicing, operations or readonly, got %q", role)
	}
	ok, err := st.OrgExists(ctx, org)
	if err != nil {
		return clientCredentials{}, err
	}
	if !ok {
		if !createOrg {
			return clientCredentials{}, fmt.Errorf("org %q does not exist; check the id, or pass --create-org to create it", org)
		}
		if err := st.EnsureOrg(ctx, org, org); err != nil {
			return clientCredentials{}, err
		}
	}
	return createClient(ctx, st, org, name, role)
}

func clientsList(ctx context.Context, st *store.Store, org string) ([]clientInfo, error) {
	cs, err := st.ListClients(ctx, org)
	if err != nil {
		return nil, err
	}
	out := make([]clientInfo, 0, len(cs))
	for _, c := range cs {
		out = append(out, infoOf(c))
	}
	return out, nil
}

// clientChange applies one state change to a client by id.
func clientChange(ctx context.Context, st *store.Store, id string, change func(context.Context, string) (store.Client, error)) (clientInfo, error) {
	c, err := change(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return clientInfo{}, fmt.Errorf("%w %q", errNoSuchClient, id)
	}
	if err != nil {
		return clientInfo{}, err
	}
	return infoOf(c), nil
}

func clientsSetRole(ctx context.Context, st *store.Store, id, role string) (clientInfo, error) {
	if !auth.ValidRole(role) {
		return clientInfo{}, fmt.Errorf("role must be admin, servicing, operations or readonly, got %q", role)
	}
	return clientChange(ctx, st, id, func(ctx context.Context, id string) (store.Client, error) {
		return st.SetClientRole(ctx, id, role)
	})
}

// clientsRotateSecret gives the client a new secret and returns it; the
// old secret and every token issued with it stop working.
func clientsRotateSecret(ctx context.Context, st *store.Store, id string) (clientCredentials, error) {
	secret, err := auth.NewSecret()
	if err != nil {
		return clientCredentials{}, err
	}
	hash, err := auth.HashSecret(secret)
	if err != nil {
		return clientCredentials{}, err
	}
	c, err := clientChange(ctx, st, id, func(ctx context.Context, id string) (store.Client, error) {
		return st.SetClientSecret(ctx, id, hash)
	})
	if err != nil {
		return clientCredentials{}, err
	}
	return clientCredentials{ClientID: c.ClientID, ClientSecret: secret, OrgID: c.OrgID, Role: c.Role}, nil
}

// parseInterleaved parses flags that may come before, between or after
// positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func runClients(ctx context.Context, args []string) error {
	return clientsCommand(ctx, args, os.Stdout, os.Stderr)
}

func clientsCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, clientsUsage)
		return errUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("clients "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	// Help shows the database URL without its password.
	dbURL := databaseURLFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	var org, name, role *string
	var createOrg *bool
	wantArgs := 1 // CLIENT_ID
	switch sub {
	case "create":
		org = fs.String("org", "", "org id; must exist unless --create-org (required)")
		name = fs.String("name", "", "a name for the client (required)")
		role = fs.String("role", auth.RoleServicing, "admin, servicing, operations or readonly")
		createOrg = fs.Bool("create-org", false, "create the org if it does not exist")
		wantArgs = 0
	case "list":
		org = fs.String("org", "", "list only this org's clients")
		wantArgs = 0
	case "set-role":
		wantArgs = 2 // CLIENT_ID ROLE
	case "disable", "enable", "rotate-secret":
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, clientsUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "payrail clients: unknown command %q\n\n%s", sub, clientsUsage)
		return errUsage
	}
	pos, err := parseInterleaved(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "%s\nFlags of payrail clients %s:\n", clientsUsage, sub)
		printFlags(stdout, fs, nil)
		return errHelp
	}
	if err != nil {
		fmt.Fprintf(stderr, "payrail clients %s: %v\nRun \"payrail clients %s -h\" for its flags.\n", sub, err, sub)
		return errUsage
	}
	if len(pos) != wantArgs {
		fmt.Fprint(stderr, clientsUsage)
		return fmt.Errorf("clients %s: want %d argument(s), got %d", sub, wantArgs, len(pos))
	}
	if sub == "create" {
		var missing []string
		if *org == "" {
			missing = append(missing, "--org")
		}
		if *name == "" {
			missing = append(missing, "--name")
		}
		if len(missing) > 0 {
			return fmt.Errorf("clients create: %s required", strings.Join(missing, " and "))
		}
	}
	pool, err := pgxpool.New(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("open PostgreSQL (%s): %w", redactURL(*dbURL), err)
	}
	defer pool.Close()
	// Client commands seal nothing, so no keys are needed.
	st := store.New(pool, nil, canopy.Events{})

	var out any
	var creds *clientCredentials
	switch sub {
	case "create":
		c, err := clientsCreate(ctx, st, *org, *name, *role, *createOrg)
		if err != nil {
			return fmt.Errorf("clients create: %w", err)
		}
		creds, out = &c, c
	case "rotate-secret":
		c, err := clientsRotateSecret(ctx, st, pos[0])
		if err != nil {
			return fmt.Errorf("clients rotate-secret: %w", err)
		}
		creds, out = &c, c
	case "list":
		list, err := clientsList(ctx, st, *org)
		if err != nil {
			return fmt.Errorf("clients list: %w", err)
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT_ID\tORG\tNAME\tROLE\tSTATUS\tVERSION\tCREATED")
		for _, c := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.ClientID, c.OrgID, c.Name, c.Role, status(c.Disabled),
				c.CredentialVersion, c.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	default:
		var c clientInfo
		switch sub {
		case "disable":
			c, err = clientChange(ctx, st, pos[0], st.DisableClient)
		case "enable":
			c, err = clientChange(ctx, st, pos[0], st.EnableClient)
		case "set-role":
			c, err = clientsSetRole(ctx, st, pos[0], pos[1])
		}
		if err != nil {
			return fmt.Errorf("clients %s: %w", sub, err)
		}
		out = c
		if !*asJSON {
			fmt.Fprintf(stdout, "client_id:  %s\norg:        %s\nrole:       %s\nstatus:     %s\nversion:    %d\n",
				c.ClientID, c.OrgID, c.Role, status(c.Disabled), c.CredentialVersion)
			if sub != "enable" {
				fmt.Fprintln(stdout, "\nTokens issued before now are refused within a few seconds.")
			}
			return nil
		}
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintf(stdout, "client_id:     %s\nclient_secret: %s\norg:           %s\nrole:          %s\n\nThe secret is shown once; store it now.\n",
		creds.ClientID, creds.ClientSecret, creds.OrgID, creds.Role)
	return nil
}

func status(disabled bool) string {
	if disabled {
		return "disabled"
	}
	return "enabled"
}
