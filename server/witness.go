package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/tokenvault/tokenvault/vault"
)

// Audit witnesses: every signed checkpoint also goes to each configured witness, from the
// checkpoint loop. A witness that fails is logged, counted in
// tokenvault_audit_witness_failures_total{witness} and sent the latest checkpoint at the next
// tick (the latest covers everything before it).

// witnessTimeout bounds one delivery to a witness.
const witnessTimeout = 5 * time.Second

// HTTPWitness POSTs each checkpoint, as signed JSON (Content-Type application/json), to URL;
// a 2xx answer means the witness kept it. Redirects are not followed.
type HTTPWitness struct {
	URL    string
	Client *http.Client // nil: one with witnessTimeout
}

// Witness posts c.
func (h HTTPWitness) Witness(ctx context.Context, c vault.Checkpoint) error {
	body, err := json.Marshal(c)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return errors.New("bad witness URL")
	}
	req.Header.Set("Content-Type", "application/json")
	client := h.Client
	if client == nil {
		client = &http.Client{Timeout: witnessTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := client.Do(req)
	if err != nil {
		// The URL may carry a credential: report the cause without it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// witnesses sends checkpoints to the configured witnesses.
type witnesses struct {
	s    *Server
	mu   sync.Mutex
	list []namedWitness
	sent map[string]uint64 // per witness: the seq of the last checkpoint it accepted
	// sentSig is the signature of that checkpoint: with replica chains a checkpoint is
	// replaced at the same seq when a chain's head moved without raising it, and the new one
	// is sent too.
	sentSig map[string]string
	ready   bool // the latest stored checkpoint was loaded (so a restart re-sends it)
}

type namedWitness struct {
	name string
	w    vault.Witness
}

func newWitnesses(s *Server, cfg Config) *witnesses {
	ws := &witnesses{s: s, sent: map[string]uint64{}, sentSig: map[string]string{}}
	if cfg.AuditWitnessFile != "" {
		ws.list = append(ws.list, namedWitness{"file", vault.FileWitness{Path: cfg.AuditWitnessFile}})
	}
	if cfg.AuditWitnessURL != "" {
		ws.list = append(ws.list, namedWitness{"url", HTTPWitness{URL: cfg.AuditWitnessURL}})
	}
	for name, w := range cfg.AuditWitnesses {
		ws.list = append(ws.list, namedWitness{name, w})
	}
	for _, w := range ws.list {
		s.metrics.witnessFailures.WithLabelValues(w.name)
	}
	return ws
}

// flush sends the latest stored checkpoint to every witness that has not accepted it.
func (ws *witnesses) flush(ctx context.Context, v *vault.Vault) {
	if len(ws.list) == 0 || v == nil {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	c, ok, err := v.LatestCheckpoint(ctx)
	if err != nil {
		ws.s.log.Error("audit witness: reading the latest checkpoint", slog.String("error", err.Error()))
		return
	}
	if !ok {
		return
	}
	for _, w := range ws.list {
		if ws.sent[w.name] > c.Seq || ws.sent[w.name] == c.Seq && ws.sentSig[w.name] == c.Signature {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, witnessTimeout)
		err := w.w.Witness(wctx, c)
		cancel()
		if err != nil {
			ws.s.metrics.witnessFailures.WithLabelValues(w.name).Inc()
			ws.s.log.Error("audit witness failed; the latest checkpoint is retried at the next one", slog.String("witness", w.name), slog.Uint64("seq", c.Seq), slog.String("error", err.Error()))
			continue
		}
		ws.sent[w.name], ws.sentSig[w.name] = c.Seq, c.Signature
		ws.s.log.Debug("audit checkpoint witnessed", slog.String("witness", w.name), slog.Uint64("seq", c.Seq))
	}
}
