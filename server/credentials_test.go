package server_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

// TestRotateCredentialAPI: RotateCredential over gRPC and POST /v1/credentials/{id}:rotate,
// its error codes, and that the secrets it returns are the ones that authenticate.
func TestRotateCredentialAPI(t *testing.T) {
	h := testenv.Start(t)
	cs := tvpb.NewCredentialServiceClient(h.Conn)
	root := authCtx(testenv.RootSecret)
	cr, err := cs.CreateCredential(root, &tvpb.CreateCredentialRequest{Name: "app", Role: "tokenizer"})
	if err != nil {
		t.Fatal(err)
	}
	id, first := cr.GetCredential().GetId(), cr.GetSecret()
	tokenize := func(secret string) int {
		code, _ := h.Post("/v1/tokens:tokenize", secret, `{"items":[{"value":"4111111111111111","template":"pan"}]}`)
		return code
	}

	// HTTP, with an overlap as a JSON duration.
	code, body := h.Post("/v1/credentials/"+id+":rotate", testenv.RootSecret, `{"overlap":"3600s"}`)
	if code != http.StatusOK {
		t.Fatalf("POST :rotate = %d %s", code, body)
	}
	var resp struct {
		Credential struct {
			ID                 string    `json:"id"`
			RotateTime         time.Time `json:"rotateTime"`
			PreviousExpireTime time.Time `json:"previousExpireTime"`
		} `json:"credential"`
		Secret             string    `json:"secret"`
		PreviousExpireTime time.Time `json:"previousExpireTime"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	d := time.Until(resp.PreviousExpireTime)
	if resp.Credential.ID != id || resp.Secret == "" || resp.Credential.RotateTime.IsZero() ||
		d < 59*time.Minute || d > time.Hour || !resp.Credential.PreviousExpireTime.Equal(resp.PreviousExpireTime) {
		t.Errorf("rotate response %s", body)
	}
	if tokenize(first) != http.StatusOK || tokenize(resp.Secret) != http.StatusOK {
		t.Error("during the overlap both secrets must work")
	}

	// gRPC, no overlap: both earlier secrets die.
	r2, err := cs.RotateCredential(root, &tvpb.RotateCredentialRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	if r2.GetPreviousExpireTime() != nil {
		t.Errorf("a rotation without overlap reports a previous_expire_time")
	}
	if tokenize(first) != http.StatusUnauthorized || tokenize(resp.Secret) != http.StatusUnauthorized || tokenize(r2.GetSecret()) != http.StatusOK {
		t.Error("after a rotation without overlap only the newest secret may work")
	}

	gone, _ := cs.CreateCredential(root, &tvpb.CreateCredentialRequest{Name: "gone", Role: "auditor"})
	if _, err := cs.RevokeCredential(root, &tvpb.RevokeCredentialRequest{Id: gone.GetCredential().GetId()}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  *tvpb.RotateCredentialRequest
		want codes.Code
	}{
		{&tvpb.RotateCredentialRequest{Id: vault.RootCredentialID, Overlap: durationpb.New(time.Minute)}, codes.InvalidArgument},
		{&tvpb.RotateCredentialRequest{Id: id, Overlap: durationpb.New(vault.MaxRotationOverlap + time.Second)}, codes.InvalidArgument},
		{&tvpb.RotateCredentialRequest{Id: id, Overlap: &durationpb.Duration{Seconds: 1, Nanos: -1}}, codes.InvalidArgument},
		{&tvpb.RotateCredentialRequest{Id: gone.GetCredential().GetId()}, codes.FailedPrecondition},
		{&tvpb.RotateCredentialRequest{Id: "cred_nope"}, codes.NotFound},
		{&tvpb.RotateCredentialRequest{}, codes.InvalidArgument},
	} {
		if _, err := cs.RotateCredential(root, tc.req); status.Code(err) != tc.want {
			t.Errorf("RotateCredential(%v) = %v, want %v", tc.req, err, tc.want)
		}
	}
	// A tokenizer may not rotate, not even itself.
	if _, err := cs.RotateCredential(authCtx(r2.GetSecret()), &tvpb.RotateCredentialRequest{Id: id}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("RotateCredential as tokenizer = %v, want PermissionDenied", err)
	}
	// The root: the old secret dies at once.
	rr, err := cs.RotateCredential(root, &tvpb.RotateCredentialRequest{Id: vault.RootCredentialID})
	if err != nil {
		t.Fatal(err)
	}
	if tokenize(testenv.RootSecret) != http.StatusUnauthorized || tokenize(rr.GetSecret()) != http.StatusOK {
		t.Error("after rotate root the old root secret must fail and the new one work")
	}
	h.AssertNotLogged(first, resp.Secret, r2.GetSecret(), rr.GetSecret())
}

// TestRevokeIsImmediateOverHTTP: the verified-credential cache holds a secret that has just
// authenticated (twice per HTTP request: the body guard and the interceptor); revoking it over
// HTTP makes the very next HTTP call, with or without a body, and gRPC call 401/Unauthenticated.
func TestRevokeIsImmediateOverHTTP(t *testing.T) {
	testenv.ForBackends(t, &pg, testRevokeIsImmediateOverHTTP)
}

func testRevokeIsImmediateOverHTTP(t *testing.T, backend testenv.Option) {
	h := testenv.Start(t, backend)
	code, body := h.Post("/v1/credentials", testenv.RootSecret, `{"name":"app","role":"tokenizer"}`)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/credentials = %d %s", code, body)
	}
	var cr struct {
		Credential struct {
			ID string `json:"id"`
		} `json:"credential"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(body, &cr); err != nil || cr.Secret == "" {
		t.Fatalf("create response %s: %v", body, err)
	}
	tokenize := func() int {
		code, _ := h.Post("/v1/tokens:tokenize", cr.Secret, `{"items":[{"value":"4111111111111111","template":"pan"}]}`)
		return code
	}
	for range 3 {
		if c := tokenize(); c != http.StatusOK {
			t.Fatalf("tokenize = %d before revocation", c)
		}
	}
	if code, body := h.Post("/v1/credentials/"+cr.Credential.ID+":revoke", testenv.RootSecret, `{}`); code != http.StatusOK {
		t.Fatalf("POST :revoke = %d %s", code, body)
	}
	if c := tokenize(); c != http.StatusUnauthorized {
		t.Errorf("the first tokenize after revocation = %d, want 401", c)
	}
	ts := tvpb.NewTokenServiceClient(h.Conn)
	if _, err := ts.Tokenize(authCtx(cr.Secret), &tvpb.TokenizeRequest{Items: []*tvpb.TokenizeItem{{Value: "4111111111111111", Template: "pan"}}}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC tokenize after revocation = %v, want Unauthenticated", err)
	}
	h.AssertNotLogged(cr.Secret)
}
