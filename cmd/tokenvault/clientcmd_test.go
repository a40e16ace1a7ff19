package main

// In-process tests of the client-command adapter and the printer (no server).

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

// execute runs the root command with args in process and returns stdout and the error.
func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	for _, v := range []string{"TOKENVAULT_ADDR", "TOKENVAULT_TOKEN", "TOKENVAULT_CA_FILE", "TOKENVAULT_TLS", "TOKENVAULT_TLS_SERVER_NAME"} {
		t.Setenv(v, "") // restored after the test
		os.Unsetenv(v)
	}
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestClientCmdChecks: -o and the token are checked before anything is sent, and checks in
// PreRunE come before them.
func TestClientCmdChecks(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tokenize", "--template", "pan", "--token", "x", "-o", "yaml", "1"}, "-o must be text or json"},
		{[]string{"tokenize", "--template", "pan", "1"}, "no credentials: set --token or TOKENVAULT_TOKEN"},
		{[]string{"grant", "list", "-o", "json"}, "no credentials"},
		{[]string{"template", "create", "--name", "x", "--base", "pan", "--mode", "foo"}, "--mode must be deterministic or random"},
		{[]string{"grant", "create", "--vendor", "v", "--domain", "d", "--template", "pan", "--purpose", "p", "--rate", "1/hour"}, "under one a minute"},
		{[]string{"keys", "disable", "one"}, "KEY_ID must be a number"},
		{[]string{"audit", "list", "--since", "yesterday"}, "times must be RFC 3339"},
		{[]string{"bench", "-o", "xml", "--token", "x"}, "-o must be text or json"},
		{[]string{"tokenize", "--template", "pan", "--token", "x", "--ca-file", "/nonexistent/ca.pem", "1"}, "--ca-file: open /nonexistent/ca.pem"},
	} {
		_, err := execute(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tokenvault %s: error %v, want one containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

// TestClientCmdMapsGRPCErrors: a gRPC error from run becomes "Code: message"; the session
// prints with -o json.
func TestClientCmdMapsGRPCErrors(t *testing.T) {
	var ran bool
	cmd := clientCmd(&cobra.Command{Use: "probe", SilenceErrors: true, SilenceUsage: true}, func(s *session, args []string) error {
		ran = true
		if !s.json {
			t.Errorf("-o json: the printer prints text")
		}
		return status.Error(codes.NotFound, "no such grant")
	})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--token", "x", "--addr", "127.0.0.1:1", "-o", "json"})
	err := cmd.Execute()
	if !ran || err == nil || err.Error() != "NotFound: no such grant" {
		t.Fatalf("ran %v, error %v; want NotFound: no such grant", ran, err)
	}
}

func TestCallErr(t *testing.T) {
	if err := callErr(nil); err != nil {
		t.Errorf("callErr(nil) = %v", err)
	}
	plain := errors.New("3 of 4 items failed")
	if err := callErr(plain); err != plain {
		t.Errorf("callErr(plain) = %v, want it unchanged", err)
	}
	if err := callErr(status.Error(codes.PermissionDenied, "not yours")); err.Error() != "PermissionDenied: not yours" {
		t.Errorf("callErr(status) = %v", err)
	}
}

func TestPrinter(t *testing.T) {
	var out bytes.Buffer
	text := func(w io.Writer) error {
		_, err := io.WriteString(w, "text\n")
		return err
	}
	p := printer{json: true, out: &out}
	if err := p.print(&tvpb.RotateKeyResponse{KeyId: 7}, text); err != nil || !strings.Contains(out.String(), `"keyId": 7`) {
		t.Errorf("proto as JSON: %q %v, want the HTTP API's camelCase field names", out.String(), err)
	}
	// Zero values are printed, so that scripts need no defaults.
	out.Reset()
	if err := p.print(&tvpb.GetKeyStatusResponse{}, text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"keys": []`, `"rewrapDone": false`, `"remaining": "0"`, `"rewrapTarget": 0`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("empty proto as JSON: %q lacks %s", out.String(), want)
		}
	}
	out.Reset()
	if err := p.print(struct {
		A int `json:"a"`
	}{1}, text); err != nil || out.String() != "{\n  \"a\": 1\n}\n" {
		t.Errorf("struct as JSON: %q %v", out.String(), err)
	}
	out.Reset()
	p.json = false
	if err := p.print(struct{}{}, text); err != nil || out.String() != "text\n" {
		t.Errorf("text: %q %v", out.String(), err)
	}
	out.Reset()
	tb := newTable(&out, "ID", "LONGER NAME", "OK")
	tb.row("a-long-id", "x", true)
	if err := tb.flush(); err != nil || out.String() != "ID         LONGER NAME  OK\na-long-id  x            true\n" {
		t.Errorf("table:\n%s", out.String())
	}
}

// fakeStream is a server stream of the given messages, then err (io.EOF: the end).
type fakeStream struct {
	msgs []string
	err  error
}

func (f *fakeStream) Recv() (string, error) {
	if len(f.msgs) == 0 {
		return "", f.err
	}
	m := f.msgs[0]
	f.msgs = f.msgs[1:]
	return m, nil
}

func TestRecvAll(t *testing.T) {
	var got []string
	collect := func(m string) error { got = append(got, m); return nil }
	if err := recvAll(&fakeStream{[]string{"a", "b"}, io.EOF}, collect); err != nil || strings.Join(got, "") != "ab" {
		t.Errorf("to the end: %v %v", got, err)
	}
	broken := status.Error(codes.Unavailable, "gone")
	if err := recvAll(&fakeStream{[]string{"c"}, broken}, collect); err != broken {
		t.Errorf("a broken stream: %v, want its error", err)
	}
	stop := errors.New("disk full")
	if err := recvAll(&fakeStream{[]string{"d", "e"}, io.EOF}, func(string) error { return stop }); err != stop {
		t.Errorf("fn failing: %v, want its error", err)
	}
}
