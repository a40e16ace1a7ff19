package vault

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/template"
)

func TestRoundTripAndReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	kek := newKEK(t)
	v, st := openTest(t, atPath(path), withKEK(kek))
	res, err := v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan"}, {Value: "a@b.example", Template: "email", Domain: "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	// Reopened with the same KEK: same tokens, same values.
	v2, _ := openTest(t, atPath(path), withKEK(kek))
	res2, err := v2.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan"}})
	if err != nil {
		t.Fatal(err)
	}
	if res2[0].Token != res[0].Token {
		t.Errorf("token changed across restart: %q vs %q", res[0].Token, res2[0].Token)
	}
	got, err := v2.Detokenize(ctx, "test", []TokenRef{{Token: res[0].Token}, {Token: res[1].Token, Domain: "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Value != "4111111111111111" || got[1].Value != "a@b.example" {
		t.Errorf("Detokenize after reopen = %+v", got)
	}
}

func TestWrongKEK(t *testing.T) {
	_, st := openTest(t)
	_, err := Open(context.Background(), Config{Store: st, KEK: newKEK(t)})
	if !errors.Is(err, ErrKEK) {
		t.Fatalf("Open with another KEK = %v, want ErrKEK", err)
	}
}

// TestCiphertextBoundToRecord moves a ciphertext onto another token's record: it must not
// decrypt there.
func TestCiphertextBoundToRecord(t *testing.T) {
	ctx := context.Background()
	v, st := openTest(t)
	res, err := v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan"}, {Value: "5555555555554444", Template: "pan"}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := recordKey(DefaultDomain, res[0].Token), recordKey(DefaultDomain, res[1].Token)
	err = st.Update(ctx, func(tx store.Tx) error {
		ra := append([]byte(nil), tx.Get(bucketRecords, a)...)
		return tx.Put(bucketRecords, b, ra)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Detokenize(ctx, "test", []TokenRef{{Token: res[0].Token}, {Token: res[1].Token}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Value != "4111111111111111" {
		t.Errorf("untouched record = %+v", got[0])
	}
	if !errors.Is(got[1].Err, ErrIntegrity) || got[1].Value != "" {
		t.Errorf("moved ciphertext: %+v, want ErrIntegrity and no value", got[1])
	}
}

// TestSmallSpaceStaysOneToOne: a 4-digit space must still map 3,000 distinct values one to
// one (stored random tokens with a collision check), and deterministically.
func TestSmallSpaceStaysOneToOne(t *testing.T) {
	ctx := context.Background()
	v, _ := openTest(t)
	var items []TokenizeItem
	for i := 0; i < 3000; i++ {
		items = append(items, TokenizeItem{Value: fmt.Sprintf("%04d", i), Template: "digits"})
	}
	res, err := v.Tokenize(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("item %d: %v", i, r.Err)
		}
		if len(r.Token) != 4 || r.Token == items[i].Value {
			t.Fatalf("Tokenize(%q) = %q: want 4 digits differing from the value", items[i].Value, r.Token)
		}
		if prev, dup := seen[r.Token]; dup {
			t.Fatalf("values %q and %q share token %q", prev, items[i].Value, r.Token)
		}
		seen[r.Token] = items[i].Value
	}
	again, err := v.Tokenize(ctx, items[:100])
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if again[i].Token != res[i].Token {
			t.Fatalf("deterministic small space: %q then %q", res[i].Token, again[i].Token)
		}
	}
	var ditems []TokenRef
	for _, r := range res {
		ditems = append(ditems, TokenRef{Token: r.Token})
	}
	got, err := v.Detokenize(ctx, "test", ditems)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i].Value != items[i].Value {
			t.Fatalf("Detokenize(%q) = %q, want %q", ditems[i].Token, got[i].Value, items[i].Value)
		}
	}
}

func TestRandomModeGivesFreshTokens(t *testing.T) {
	ctx := context.Background()
	v, _ := openTest(t)
	if _, err := v.CreateTemplate(ctx, template.Definition{Name: "pan-random", Base: "pan", Mode: template.Random}); err != nil {
		t.Fatal(err)
	}
	items := []TokenizeItem{{Value: "4111111111111111", Template: "pan-random"}, {Value: "4111111111111111", Template: "pan-random"}}
	res, err := v.Tokenize(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Token == res[1].Token {
		t.Fatalf("random mode returned the same token twice: %q", res[0].Token)
	}
	got, err := v.Detokenize(ctx, "test", []TokenRef{{Token: res[0].Token}, {Token: res[1].Token, Template: "pan-random"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i].Value != "4111111111111111" {
			t.Errorf("random token %d detokenizes to %+v", i, got[i])
		}
	}
	if _, err := v.CreateTemplate(ctx, template.Definition{Name: "pan-random", Base: "pan"}); !errors.Is(err, ErrTemplateExists) {
		t.Errorf("duplicate CreateTemplate = %v, want ErrTemplateExists", err)
	}
	if _, err := v.CreateTemplate(ctx, template.Definition{Name: "pan", Base: "pan"}); err == nil {
		t.Errorf("CreateTemplate over a built-in name succeeded")
	}
}

func TestBatchLimits(t *testing.T) {
	ctx := context.Background()
	v, _ := openTest(t)
	if _, err := v.Tokenize(ctx, make([]TokenizeItem, MaxBatch+1)); !errors.Is(err, ErrBatchTooLarge) {
		t.Errorf("oversized batch = %v", err)
	}
	if _, err := v.Tokenize(ctx, nil); !errors.Is(err, ErrEmptyBatch) {
		t.Errorf("empty batch = %v", err)
	}
	if _, err := v.Tokenize(ctx, []TokenizeItem{{Value: "x", Template: "nope"}}); !errors.Is(err, ErrUnknownTemplate) {
		t.Errorf("unknown template = %v", err)
	}
}

func TestCredentials(t *testing.T) {
	ctx := context.Background()
	v, _ := openTest(t)
	c, secret, err := v.CreateCredential(ctx, CredentialSpec{Name: "billing", Role: RoleDetokenizer})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Authenticate(ctx, secret)
	if err != nil || p.ID != c.ID || p.Role != RoleDetokenizer {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	if _, err := v.Authenticate(ctx, secret+"x"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("wrong secret = %v", err)
	}
	if err := v.RevokeCredential(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Authenticate(ctx, secret); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked secret = %v", err)
	}
	if _, _, err := v.CreateCredential(ctx, CredentialSpec{Name: "v", Role: RoleVendor}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("vendor role without vendor = %v", err)
	}
	root, err := v.InitRoot(ctx)
	if err != nil || root == "" {
		t.Fatalf("InitRoot = %q, %v", root, err)
	}
	if again, err := v.InitRoot(ctx); err != nil || again != "" {
		t.Fatalf("second InitRoot = %q, %v; want no new secret", again, err)
	}
	if p, err := v.Authenticate(ctx, root); err != nil || p.Role != RoleAdmin {
		t.Fatalf("root = %+v, %v", p, err)
	}
}
