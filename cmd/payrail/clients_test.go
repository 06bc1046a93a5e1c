package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
)

// clients runs "payrail clients ARGS..." against the test database and
// returns its standard output.
func clients(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := clientsCommand(context.Background(), append(args, "--database-url", testServices(t).DatabaseURL), &stdout, &stderr)
	return stdout.String(), err
}

func clientsJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, err := clients(t, append(args, "--json")...)
	if err != nil {
		t.Fatalf("clients %v: %v", args, err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("clients %v printed %q: %v", args, out, err)
	}
}

func TestClientsCreateNeedsAnExistingOrg(t *testing.T) {
	org := testenv.UniqueID("org_typo_")
	_, err := clients(t, "create", "--org", org, "--name", "n")
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "--create-org") {
		t.Fatalf("create in a missing org: %v, want an error saying it does not exist", err)
	}
	st := store.New(testServices(t).Pool, nil, canopy.Events{})
	if ok, _ := st.OrgExists(context.Background(), org); ok {
		t.Fatal("the org was created anyway")
	}
	var c clientCredentials
	clientsJSON(t, &c, "create", "--org", org, "--name", "n", "--create-org", "--role", "readonly")
	if !auth.ValidClientID(c.ClientID) || !strings.HasPrefix(c.ClientSecret, "sk_") || c.OrgID != org || c.Role != "readonly" {
		t.Fatalf("created %+v", c)
	}
	// Now the org exists: no flag needed.
	clientsJSON(t, &c, "create", "--org", org, "--name", "second")
	if c.Role != auth.RoleServicing {
		t.Fatalf("default role %q", c.Role)
	}
	if _, err := clients(t, "create", "--org", org, "--name", "x", "--role", "root"); err == nil {
		t.Fatal("created a client with role root")
	}
}

func TestClientsLifecycle(t *testing.T) {
	ctx := context.Background()
	st := store.New(testServices(t).Pool, nil, canopy.Events{})
	org := testenv.UniqueID("org_")
	var c clientCredentials
	clientsJSON(t, &c, "create", "--org", org, "--name", "billing", "--create-org")

	var list []clientInfo
	clientsJSON(t, &list, "list", "--org", org)
	if len(list) != 1 || list[0].ClientID != c.ClientID || list[0].Name != "billing" || list[0].Disabled || list[0].CredentialVersion != 1 {
		t.Fatalf("list %+v", list)
	}
	text, err := clients(t, "list", "--org", org)
	if err != nil || !strings.Contains(text, c.ClientID) || !strings.Contains(text, "enabled") {
		t.Fatalf("list text %q, %v", text, err)
	}

	var info clientInfo
	clientsJSON(t, &info, "disable", c.ClientID)
	if !info.Disabled || info.CredentialVersion != 2 {
		t.Fatalf("disable: %+v", info)
	}
	clientsJSON(t, &info, "enable", c.ClientID)
	if info.Disabled || info.CredentialVersion != 2 {
		t.Fatalf("enable: %+v", info)
	}
	// Flags may follow the positional arguments.
	clientsJSON(t, &info, "set-role", c.ClientID, "admin")
	if info.Role != auth.RoleAdmin || info.CredentialVersion != 3 {
		t.Fatalf("set-role: %+v", info)
	}
	if _, err := clients(t, "set-role", c.ClientID, "root"); err == nil {
		t.Fatal("set-role root accepted")
	}

	var rotated clientCredentials
	clientsJSON(t, &rotated, "rotate-secret", c.ClientID)
	if rotated.ClientID != c.ClientID || rotated.ClientSecret == c.ClientSecret || !strings.HasPrefix(rotated.ClientSecret, "sk_") {
		t.Fatalf("rotate-secret: %+v", rotated)
	}
	row, err := st.ClientByID(ctx, c.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	if auth.CheckSecret(row.SecretHash, c.ClientSecret) || !auth.CheckSecret(row.SecretHash, rotated.ClientSecret) || row.Version != 4 {
		t.Fatalf("after rotation: old secret still good, new one not, or version %d", row.Version)
	}
	text, err = clients(t, "rotate-secret", c.ClientID)
	if err != nil || !strings.Contains(text, "client_secret: sk_") || !strings.Contains(text, "shown once") {
		t.Fatalf("rotate-secret text %q, %v", text, err)
	}

	for _, sub := range []string{"disable", "enable", "rotate-secret"} {
		if _, err := clients(t, sub, "cli_aaaaaaaaaaaaaaaaaaaa"); !errors.Is(err, errNoSuchClient) {
			t.Errorf("%s of a missing client: %v", sub, err)
		}
	}
	if _, err := clients(t, "disable"); err == nil {
		t.Error("disable without a client id accepted")
	}
	if _, err := clients(t, "frobnicate"); !errors.Is(err, errUsage) {
		t.Errorf("unknown subcommand: %v", err)
	}
}
