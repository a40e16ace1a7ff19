package client_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	client "github.com/tokenvault/tokenvault/clients/go"
	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

// callsOf are one unary call of each admin service and the two streams, through the typed
// accessors; each returns the call's error.
func callsOf(c *client.Client) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"Credentials": func(ctx context.Context) error {
			_, err := c.Credentials().ListCredentials(ctx, &tvpb.ListCredentialsRequest{})
			return err
		},
		"Grants": func(ctx context.Context) error {
			_, err := c.Grants().ListGrants(ctx, &tvpb.ListGrantsRequest{})
			return err
		},
		"Keys": func(ctx context.Context) error {
			_, err := c.Keys().GetKeyStatus(ctx, &tvpb.GetKeyStatusRequest{})
			return err
		},
		"Audit": func(ctx context.Context) error {
			_, err := c.Audit().GetAuditPublicKey(ctx, &tvpb.GetAuditPublicKeyRequest{})
			return err
		},
		"Templates": func(ctx context.Context) error {
			_, err := c.Templates().ListTemplates(ctx, &tvpb.ListTemplatesRequest{})
			return err
		},
		"Text": func(ctx context.Context) error {
			_, err := c.Text().TokenizeText(ctx, &tvpb.TokenizeTextRequest{Items: []*tvpb.TokenizeTextItem{{Text: "mail a@example.com"}}})
			return err
		},
		"Tokens": func(ctx context.Context) error {
			_, err := c.Tokens().EraseSubject(ctx, &tvpb.EraseSubjectRequest{Subject: "nobody"})
			return err
		},
		"Backup stream": func(ctx context.Context) error {
			s, err := c.Keys().Backup(ctx, &tvpb.BackupRequest{})
			if err != nil {
				return err
			}
			return drain(s)
		},
		"ExportAudit stream": func(ctx context.Context) error {
			s, err := c.Audit().ExportAudit(ctx, &tvpb.ExportAuditRequest{FromSeq: 1})
			if err != nil {
				return err
			}
			return drain(s)
		},
	}
}

// drain reads a stream to its end; nil if it ended with io.EOF.
func drain[T any](s interface{ Recv() (T, error) }) error {
	for {
		if _, err := s.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// Every call, unary or stream, made through the typed accessors on a server that accepts the
// connection but never answers, fails with DeadlineExceeded after the client's default
// timeout, although the caller's context has no deadline.
func TestDefaultDeadlineOnEveryCall(t *testing.T) {
	const timeout = 300 * time.Millisecond
	c, err := client.New(testenv.Silent(t), client.WithToken("tvs_x"), client.WithTimeout(timeout), client.WithRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	calls := callsOf(c)
	calls["Tokenize"] = func(ctx context.Context) error {
		_, err := c.Tokenize(ctx, []client.TokenizeItem{{Value: "a@example.com", Template: "email"}})
		return err
	}
	for name, call := range calls {
		start := time.Now()
		err := call(context.Background())
		took := time.Since(start)
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("%s on a silent server: %v, want DeadlineExceeded", name, err)
		}
		if took < timeout || took > timeout+5*time.Second {
			t.Errorf("%s failed after %s, want about %s", name, took, timeout)
		}
		if strings.HasSuffix(name, "stream") && !strings.Contains(status.Convert(err).Message(), "idle limit") {
			t.Errorf("%s: %v, want the idle limit named", name, err)
		}
	}
}

// A context with its own deadline keeps it: shorter than the default here, so the call on a
// silent server ends at the caller's deadline, not after the client's hour.
func TestCallersDeadlineWins(t *testing.T) {
	c, err := client.New(testenv.Silent(t), client.WithToken("tvs_x"), client.WithTimeout(time.Hour), client.WithRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, call := range callsOf(c) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		err := call(ctx)
		cancel()
		if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 5*time.Second {
			t.Errorf("%s with a 200ms context: %v after %s, want DeadlineExceeded at once", name, err, time.Since(start))
		}
	}
}

// The accessors reach a real server, and the idle limit does not cut streams that keep
// moving: with a short limit, a backup and an export of a real store complete.
func TestAccessorsOnARealServer(t *testing.T) {
	env := testenv.Start(t, testenv.DiscardLogs())
	c, err := client.New(env.Addrs.GRPC, client.WithToken(testenv.RootSecret), client.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, call := range callsOf(c) {
		if err := call(context.Background()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Results, not only the absence of errors.
	ctx := context.Background()
	cr, err := c.Credentials().CreateCredential(ctx, &tvpb.CreateCredentialRequest{Name: "etl", Role: "tokenizer"})
	if err != nil || !strings.HasPrefix(cr.GetSecret(), "tvs_") {
		t.Fatalf("CreateCredential: %v", err)
	}
	cl, err := c.Credentials().ListCredentials(ctx, &tvpb.ListCredentialsRequest{})
	if err != nil || len(cl.GetCredentials()) != 2 {
		t.Errorf("ListCredentials = %d credentials (%v), want root and etl", len(cl.GetCredentials()), err)
	}
	ks, err := c.Keys().GetKeyStatus(ctx, &tvpb.GetKeyStatusRequest{})
	if err != nil || len(ks.GetKeys()) != 1 {
		t.Errorf("GetKeyStatus = %v (%v), want one key", ks, err)
	}
	tt, err := c.Text().TokenizeText(ctx, &tvpb.TokenizeTextRequest{Items: []*tvpb.TokenizeTextItem{{Text: "mail a@example.com"}}})
	if err != nil || len(tt.GetResults()) != 1 || strings.Contains(tt.GetResults()[0].GetText(), "a@example.com") {
		t.Errorf("TokenizeText = %v (%v), want the address tokenized", tt, err)
	}
	bs, err := c.Keys().Backup(ctx, &tvpb.BackupRequest{})
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for {
		m, err := bs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Backup: %v", err)
		}
		size += len(m.GetChunk())
	}
	if size == 0 {
		t.Error("Backup streamed nothing")
	}
}
