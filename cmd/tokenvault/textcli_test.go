package main

import (
	"strings"
	"testing"
)

// TestCLIText: text tokenize prints the text with tokens, text detect lists findings without
// values, text detokenize gives the input back byte for byte.
func TestCLIText(t *testing.T) {
	srv := startServer(t, t.TempDir())
	defer srv.stopClean()
	conn := []string{"--addr", srv.grpcAddr, "--token", rootToken}
	in := "Hi 👋, card 4111 1111 1111 1111, mail jane@example.com, ip 10.1.2.3.\nBye\n"
	out, errOut, code := runCLIStdin(t, childEnv(), in, append([]string{"text", "tokenize", "--domain", "chat"}, conn...)...)
	if code != 0 || strings.Contains(out, "4111 1111 1111 1111") || strings.Contains(out, "jane@") || strings.Contains(out, "10.1.2.3") ||
		!strings.HasPrefix(out, "Hi 👋, card ") || !strings.HasSuffix(out, ".\nBye\n") {
		t.Fatalf("text tokenize = %d %q %q", code, out, errOut)
	}
	back, errOut, code := runCLIStdin(t, childEnv(), out, append([]string{"text", "detokenize", "--domain", "chat", "--purpose", "t"}, conn...)...)
	if code != 0 || back != in {
		t.Fatalf("text detokenize = %d %q %q, want the input", code, back, errOut)
	}
	det, errOut, code := runCLIStdin(t, childEnv(), in, append([]string{"text", "detect"}, conn...)...)
	if code != 0 || !strings.Contains(det, "pan") || !strings.Contains(det, "email") || strings.Contains(det, "4111") {
		t.Fatalf("text detect = %d %q %q", code, det, errOut)
	}
	js, _, code := runCLIStdin(t, childEnv(), in, append([]string{"text", "tokenize", "--entities", "email", "-o", "json"}, conn...)...)
	if code != 0 || !strings.Contains(js, `"findings"`) || strings.Contains(js, `"pan"`) {
		t.Fatalf("text tokenize -o json = %d %q", code, js)
	}
}
