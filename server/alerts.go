package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tokenvault/tokenvault/vault"
)

// AlertConfig configures the alerts evaluated in the server. Zero thresholds are off; canary
// tokens and off-hours reveals always alert.
type AlertConfig struct {
	// VendorRevealsPerMinute alerts when one vendor's reveals exceed this many a minute.
	VendorRevealsPerMinute int
	// GrantRevealsPerMinute alerts when one grant's reveals exceed this many a minute.
	GrantRevealsPerMinute int
	// DenialsPerMinute alerts when one caller (credential, or source address when anonymous)
	// is denied more than this many times a minute: requests and items alike.
	DenialsPerMinute int
	// WebhookURL, when set, receives each alert as a JSON POST, signed with WebhookSecret
	// (HMAC-SHA256 of "timestamp.body" in X-Tokenvault-Signature) and retried with backoff.
	WebhookURL    string
	WebhookSecret []byte
	// Client posts webhooks (default: 10 s timeout).
	Client *http.Client
}

// Alert is one firing, as logged, audited and posted.
type Alert struct {
	Time       time.Time `json:"time"`
	Rule       string    `json:"rule"`     // canary, vendor_reveal_rate, grant_reveal_rate, denial_burst, off_hours
	Severity   string    `json:"severity"` // critical or warning
	Vendor     string    `json:"vendor,omitempty"`
	Grant      string    `json:"grant,omitempty"`
	Credential string    `json:"credential,omitempty"`
	Source     string    `json:"source,omitempty"`
	RequestID  string    `json:"request_id,omitempty"`
	Count      int       `json:"count,omitempty"`
	Message    string    `json:"message"`
}

// window counts events per key in one-minute buckets and fires at most once a minute per key.
type window struct {
	minute    int64
	cur, prev int
	firedAt   int64
}

// rate returns the sliding one-minute count: this minute plus the unexpired part of the last.
func (w *window) add(now time.Time, n int) int {
	m := now.Unix() / 60
	switch {
	case m == w.minute:
	case m == w.minute+1:
		w.prev, w.cur = w.cur, 0
	default:
		w.prev, w.cur = 0, 0
	}
	w.minute = m
	w.cur += n
	frac := float64(now.Unix()%60) / 60
	return w.cur + int(float64(w.prev)*(1-frac))
}

type alerter struct {
	cfg     AlertConfig
	s       *Server
	mu      sync.Mutex
	windows map[string]*window
	queue   chan Alert
}

func newAlerter(cfg AlertConfig, s *Server) *alerter {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	return &alerter{cfg: cfg, s: s, windows: map[string]*window{}, queue: make(chan Alert, 1000)}
}

// count adds n events under key; it reports the sliding count when it crossed limit and the
// key has not fired this minute.
func (a *alerter) count(key string, n, limit int, now time.Time) (int, bool) {
	if limit <= 0 || n <= 0 {
		return 0, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	w, ok := a.windows[key]
	if !ok {
		if len(a.windows) > 100000 { // bounded: forget everything rather than grow without end
			a.windows = map[string]*window{}
		}
		w = &window{}
		a.windows[key] = w
	}
	c := w.add(now, n)
	if c > limit && w.firedAt != now.Unix()/60 {
		w.firedAt = now.Unix() / 60
		return c, true
	}
	return c, false
}

// fire records an alert: a metric, a structured log line, an audit event and a webhook.
func (a *alerter) fire(ctx context.Context, al Alert) {
	if al.Time.IsZero() {
		al.Time = a.s.now().UTC() // the vault's clock, like every other audit event
	}
	if al.RequestID == "" {
		al.RequestID = requestID(ctx)
	}
	a.s.metrics.alerts.WithLabelValues(al.Rule, al.Severity).Inc()
	level := slog.LevelWarn
	if al.Severity == "critical" {
		level = slog.LevelError
	}
	a.s.log.Log(ctx, level, "alert", slog.String("rule", al.Rule), slog.String("severity", al.Severity),
		slog.String("vendor", al.Vendor), slog.String("grant", al.Grant), slog.String("credential", al.Credential),
		slog.String("source", al.Source), slog.String("request_id", al.RequestID), slog.Int("count", al.Count), slog.String("message", al.Message))
	if v := a.s.vlt(); v != nil {
		if err := v.Audit(ctx, vault.AuditEvent{
			Time: al.Time, RequestID: al.RequestID, Method: "Alert", Source: al.Source,
			Actor:   vault.Actor{CredentialID: al.Credential, Vendor: al.Vendor},
			Outcome: "alert", Reason: al.Severity + " " + al.Rule + ": " + al.Message, Items: al.Count,
			GrantIDs: nonEmpty(al.Grant),
		}); err != nil {
			a.s.log.Error("cannot audit an alert", slog.String("error", err.Error()))
		}
	}
	if a.cfg.WebhookURL != "" {
		select {
		case a.queue <- al:
		default:
			a.s.log.Error("alert webhook queue full; alert not posted", slog.String("rule", al.Rule))
		}
	}
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// run posts queued alerts until ctx ends, retrying each with exponential backoff; a few
// workers, so one slow retry does not hold up the alerts behind it.
func (a *alerter) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case al := <-a.queue:
					a.post(ctx, al)
				}
			}
		}()
	}
	wg.Wait()
}

// Sign returns the X-Tokenvault-Signature value for a webhook body sent at ts.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (a *alerter) post(ctx context.Context, al Alert) {
	body, _ := json.Marshal(al)
	wait := time.Second
	for attempt := 1; attempt <= 6; attempt++ {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.WebhookURL, bytes.NewReader(body))
		if err != nil {
			a.s.log.Error("alert webhook: bad URL", slog.String("error", err.Error()))
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Tokenvault-Timestamp", ts)
		req.Header.Set("X-Tokenvault-Signature", Sign(a.cfg.WebhookSecret, ts, body))
		resp, err := a.cfg.Client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		a.s.log.Warn("alert webhook failed", slog.String("rule", al.Rule), slog.Int("attempt", attempt), slog.String("error", err.Error()))
		if attempt == 6 {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
	a.s.metrics.webhookFailures.Inc()
	a.s.log.Error("alert webhook gave up", slog.String("rule", al.Rule))
}

// onReveals evaluates reveal alerts for one vendor call.
func (a *alerter) onVendorReveals(ctx context.Context, p vault.Principal, res []vault.VendorResult) {
	now := time.Now()
	perGrant, offHours := map[string]int{}, map[string]int{}
	allowed, denied := 0, 0
	for _, r := range res {
		if r.Canary {
			a.fire(ctx, Alert{Rule: "canary", Severity: "critical", Vendor: p.Vendor, Credential: p.ID, Source: sourceOf(ctx),
				Grant: r.GrantID, Message: "a canary token was requested by a vendor (planted: " + r.CanaryLabel + ")"})
		}
		if r.Err != nil {
			denied++
			continue
		}
		allowed++
		perGrant[r.GrantID]++
		if r.OffHours {
			offHours[r.GrantID]++
		}
	}
	for g, n := range offHours {
		a.fire(ctx, Alert{Rule: "off_hours", Severity: "warning", Vendor: p.Vendor, Credential: p.ID, Grant: g, Source: sourceOf(ctx),
			Count: n, Message: "reveals outside the grant's allowed hours"})
	}
	if c, ok := a.count("vendor:"+p.Vendor, allowed, a.cfg.VendorRevealsPerMinute, now); ok {
		a.fire(ctx, Alert{Rule: "vendor_reveal_rate", Severity: "warning", Vendor: p.Vendor, Credential: p.ID, Count: c,
			Message: fmt.Sprintf("vendor revealed %d items in a minute (threshold %d)", c, a.cfg.VendorRevealsPerMinute)})
	}
	for g, n := range perGrant {
		if c, ok := a.count("grant:"+g, n, a.cfg.GrantRevealsPerMinute, now); ok {
			a.fire(ctx, Alert{Rule: "grant_reveal_rate", Severity: "warning", Vendor: p.Vendor, Grant: g, Count: c,
				Message: fmt.Sprintf("grant revealed %d items in a minute (threshold %d)", c, a.cfg.GrantRevealsPerMinute)})
		}
	}
	a.onDenials(ctx, p.ID, denied)
}

// onDenials counts denials of one caller (credential id, or source address).
func (a *alerter) onDenials(ctx context.Context, credential string, n int) {
	who := credential
	if who == "" {
		who = "source:" + sourceOf(ctx)
	}
	if c, ok := a.count("denials:"+who, n, a.cfg.DenialsPerMinute, time.Now()); ok {
		a.fire(ctx, Alert{Rule: "denial_burst", Severity: "warning", Credential: credential, Source: sourceOf(ctx), Count: c,
			Message: fmt.Sprintf("%d denials in a minute (threshold %d)", c, a.cfg.DenialsPerMinute)})
	}
}

// onInternalReveals raises canary alerts for internal detokenize calls.
func (a *alerter) onInternalReveals(ctx context.Context, p vault.Principal, res []vault.DetokenizeResult) {
	for _, r := range res {
		if r.Canary {
			a.fire(ctx, Alert{Rule: "canary", Severity: "critical", Credential: p.ID, Source: sourceOf(ctx),
				Message: "a canary token was detokenized on the internal listener (planted: " + r.CanaryLabel + ")"})
		}
	}
}
