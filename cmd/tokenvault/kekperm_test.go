package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveMustRefuse runs `tokenvault serve args...` and expects it to exit non-zero before
// it starts listening; it returns stderr. A server that starts serving instead fails the
// test (and is killed).
func serveMustRefuse(t *testing.T, args ...string) string {
	t.Helper()
	_, stderr := serveMustRefuseOut(t, args...)
	return stderr
}

// serveMustRefuseOut is serveMustRefuse returning stdout too.
func serveMustRefuseOut(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = childEnv()
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			if code := cmd.ProcessState.ExitCode(); code == 0 {
				t.Fatalf("serve exited 0, want a refusal\nstderr:\n%s", errb.String())
			}
			return out.String(), errb.String()
		case <-tick.C:
			if listeningRE.MatchString(out.String()) {
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("serve started listening, want a refusal\nstdout:\n%s\nstderr:\n%s", out.String(), errb.String())
			}
		case <-ctx.Done():
			<-done
			t.Fatalf("serve neither refused nor listened within %v\nstderr:\n%s", startTimeout, errb.String())
		}
	}
}

// Finding 3 of issue 11: the KEK file's permissions were checked only when the file was
// first read by LoadOrCreate on a new vault; after a chmod 644 a restart served silently.
func TestServeRefusesKEKReadableByOthersOnRestart(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		t.Run(mode.String(), func(t *testing.T) {
			data := t.TempDir()
			kekPath := filepath.Join(data, "kek.json")
			p := startServer(t, data, "--kek-file", kekPath)
			p.stopClean()
			if err := os.Chmod(kekPath, mode); err != nil {
				t.Fatal(err)
			}
			stderr := serveMustRefuse(t, append(serveArgs(), "--data", data, "--dev-root-token", rootToken, "--kek-file", kekPath)...)
			if !strings.Contains(stderr, "chmod 600 "+kekPath) {
				t.Errorf("the refusal does not say how to fix it (chmod 600 %s):\n%s", kekPath, stderr)
			}
			// Fixed as told, it starts again.
			if err := os.Chmod(kekPath, 0o600); err != nil {
				t.Fatal(err)
			}
			startServer(t, data, "--kek-file", kekPath).stopClean()
		})
	}
}

// The same check outside dev mode, where an unopenable KEK would otherwise only seal the
// server: a permission problem is not transient and must stop the start.
func TestServeRefusesKEKReadableByOthersOutsideDev(t *testing.T) {
	data := t.TempDir()
	kekPath := filepath.Join(t.TempDir(), "kek.json")
	args := prodServeArgs(data, kekPath)
	initStore(t, data, kekPath)
	startProcess(t, childEnv(), args...).stopClean()
	if err := os.Chmod(kekPath, 0o644); err != nil {
		t.Fatal(err)
	}
	stderr := serveMustRefuse(t, args...)
	if !strings.Contains(stderr, "chmod 600 "+kekPath) {
		t.Errorf("the refusal does not say how to fix it:\n%s", stderr)
	}
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its key (with keyMode).
func writeTestCert(t *testing.T, dir string, keyMode os.FileMode) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tokenvault-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	var cb, kb bytes.Buffer
	pem.Encode(&cb, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&kb, &pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	if err := os.WriteFile(certPath, cb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, kb.Bytes(), keyMode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyPath, keyMode); err != nil { // umask
		t.Fatal(err)
	}
	return certPath, keyPath
}

// TLS private keys are key files the server reads too: world-readable ones are refused,
// group-readable ones (0640 with a service group, 0440 Kubernetes Secret mounts, as
// docs/install.md and deploy/kubernetes use) are accepted.
func TestServeRefusesWorldReadableTLSKeys(t *testing.T) {
	for _, flags := range [][2]string{{"--tls-cert", "--tls-key"}, {"--vendor-tls-cert", "--vendor-tls-key"}} {
		t.Run(flags[1], func(t *testing.T) {
			dir := t.TempDir()
			cert, key := writeTestCert(t, dir, 0o644)
			args := append(serveArgs(), "--data", t.TempDir(), flags[0], cert, flags[1], key)
			stderr := serveMustRefuse(t, args...)
			if !strings.Contains(stderr, "chmod 600 "+key) || !strings.Contains(stderr, flags[1]) {
				t.Errorf("the refusal does not name the flag and the fix (chmod 600 %s):\n%s", key, stderr)
			}
			if err := os.Chmod(key, 0o640); err != nil {
				t.Fatal(err)
			}
			startProcess(t, childEnv(), args...).stopClean()
		})
	}
}
