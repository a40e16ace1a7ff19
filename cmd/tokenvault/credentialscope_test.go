package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

// TestCLICredentialScope: credential create takes --domains, --templates, --reveal and
// --expires; credential list shows scope, status and expiry (text and -o json); the scoped
// secret sees masks in scope and is denied out of it; misuse of the flags is refused with a
// message that says why.
func TestCLICredentialScope(t *testing.T) {
	srv := startServer(t, t.TempDir())
	env := childEnv()
	conn := []string{"--addr", srv.grpcAddr, "--token", rootToken}
	cli := func(args ...string) (string, string, int) {
		t.Helper()
		return runCLI(t, env, append(args, conn...)...)
	}
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := cli(args...)
		if code != 0 {
			t.Fatalf("tokenvault %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	var created struct {
		Credential struct {
			ID         string    `json:"id"`
			Domains    []string  `json:"domains"`
			Templates  []string  `json:"templates"`
			Reveal     string    `json:"reveal"`
			ExpireTime time.Time `json:"expireTime"`
		} `json:"credential"`
		Secret string `json:"secret"`
	}
	before := time.Now()
	out := run("credential", "create", "--name", "billing", "--role", "detokenizer", "--domains", "a", "--templates", "pan,email", "--reveal", "masked", "--expires", "720h", "-o", "json")
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("credential create -o json: %s (%v)", out, err)
	}
	c := created.Credential
	if strings.Join(c.Domains, ",") != "a" || strings.Join(c.Templates, ",") != "email,pan" || c.Reveal != "masked" ||
		c.ExpireTime.Before(before.Add(720*time.Hour-time.Minute)) || c.ExpireTime.After(time.Now().Add(720*time.Hour)) {
		t.Errorf("created %+v", c)
	}

	// The text list: status, scope and expiry in columns.
	list := run("credential", "list")
	var row string
	for _, l := range strings.Split(list, "\n") {
		if strings.HasPrefix(l, c.ID) {
			row = l
		}
	}
	for _, want := range []string{"active", "domains=a templates=email,pan reveal=masked", c.ExpireTime.UTC().Format(time.RFC3339)} {
		if !strings.Contains(row, want) {
			t.Errorf("credential list row %q lacks %q", row, want)
		}
	}
	if !strings.Contains(list, "STATUS") || !strings.Contains(list, "SCOPE") || !strings.Contains(list, "EXPIRES") {
		t.Errorf("credential list header: %q", list)
	}
	var jl struct {
		Credentials []struct {
			ID         string   `json:"id"`
			Domains    []string `json:"domains"`
			Reveal     string   `json:"reveal"`
			ExpireTime string   `json:"expireTime"`
		} `json:"credentials"`
	}
	out = run("credential", "list", "-o", "json")
	if err := json.Unmarshal([]byte(out), &jl); err != nil || len(jl.Credentials) != 2 || jl.Credentials[0].ID != c.ID ||
		jl.Credentials[0].Reveal != "masked" || len(jl.Credentials[0].Domains) != 1 || jl.Credentials[0].ExpireTime == "" {
		t.Errorf("credential list -o json lacks the scope or expiry: %s (%v)", out, err)
	}

	// The scoped secret: masked in scope, denied out of it.
	tokA := strings.TrimSpace(run("tokenize", "--template", "pan", "--domain", "a", "4111111111111111"))
	tokB := strings.TrimSpace(run("tokenize", "--template", "pan", "--domain", "b", "4111111111111111"))
	scoped := []string{"--addr", srv.grpcAddr, "--token", created.Secret}
	out, errOut, code := runCLI(t, env, append([]string{"detokenize", "--domain", "a", tokA}, scoped...)...)
	if code != 0 || out != "************1111\n" {
		t.Errorf("scoped detokenize in scope: exit %d, %q %s; want the mask", code, out, errOut)
	}
	out, errOut, code = runCLI(t, env, append([]string{"detokenize", "--domain", "b", tokB}, scoped...)...)
	if code == 0 || !strings.Contains(strings.ToLower(errOut), "permission denied") || strings.Contains(out+errOut, "4111") {
		t.Errorf("scoped detokenize out of scope: exit %d, stdout %q, stderr %q; want denied", code, out, errOut)
	}

	// Misuse: refused, saying why.
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--role", "admin", "--domains", "a"}, "only tokenizer and detokenizer"},
		{[]string{"--role", "tokenizer", "--reveal", "masked"}, "only to detokenizer"},
		{[]string{"--role", "detokenizer", "--templates", "nosuch"}, "existing templates"},
		{[]string{"--role", "tokenizer", "--expires", "-1h"}, "expires"},
	} {
		if _, errOut, code := cli(append([]string{"credential", "create", "--name", "bad"}, tc.args...)...); code == 0 || !strings.Contains(errOut, tc.msg) {
			t.Errorf("credential create %v: exit %d, stderr %q; want refused saying %q", tc.args, code, errOut, tc.msg)
		}
	}
}

// TestCredentialListCells: the status and scope cells of credential list.
func TestCredentialListCells(t *testing.T) {
	for _, tc := range []struct {
		cr            *tvpb.Credential
		status, scope string
	}{
		{&tvpb.Credential{Role: "tokenizer"}, "active", "all"},
		{&tvpb.Credential{Role: "admin", ExpireTime: timestamppb.Now()}, "active", "-"},
		{&tvpb.Credential{Role: "detokenizer", Expired: true, Domains: []string{"a", "b"}, Reveal: "masked"}, "expired", "domains=a,b reveal=masked"},
		{&tvpb.Credential{Role: "tokenizer", Revoked: true, Expired: true, Templates: []string{"pan"}}, "revoked", "templates=pan"},
		{&tvpb.Credential{Role: "vendor", Vendor: "acme"}, "active", "-"},
	} {
		if got := credentialStatus(tc.cr); got != tc.status {
			t.Errorf("status of %v: %q, want %q", tc.cr, got, tc.status)
		}
		if got := scopeText(tc.cr); got != tc.scope {
			t.Errorf("scope of %v: %q, want %q", tc.cr, got, tc.scope)
		}
	}
}
