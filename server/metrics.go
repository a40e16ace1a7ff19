package server

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc/codes"
)

// metrics are registered on a registry of the Server's own (no global state). Labels carry
// method names, codes, templates and domains, never values or tokens.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	items    *prometheus.CounterVec
	auditSeq prometheus.Gauge
	alerts   *prometheus.CounterVec

	webhookFailures prometheus.Counter
	witnessFailures *prometheus.CounterVec

	// The series of the per-request metrics, looked up once per label set instead of by
	// WithLabelValues (label hashing, a lock) on every request: method → OK counter, method
	// → latency observer, itemKey → item counter. Entries are made on first use, as
	// WithLabelValues makes series, so the exported series are the same; they are bounded as
	// the series are (methods of the authorization table; item labels as countItems gives).
	okByMethod      sync.Map // string → prometheus.Counter
	latencyByMethod sync.Map // string → prometheus.Observer
	itemsByLabels   sync.Map // itemKey → prometheus.Counter
}

// itemKey is the label set of one tokenvault_items_total series.
type itemKey struct{ op, vendor, template, domain, outcome string }

// requestDone counts a request of method that ended with code, and observes its latency.
func (m *metrics) requestDone(method string, code codes.Code, d time.Duration) {
	if code == codes.OK {
		c, ok := m.okByMethod.Load(method)
		if !ok {
			c, _ = m.okByMethod.LoadOrStore(method, m.requests.WithLabelValues(method, code.String()))
		}
		c.(prometheus.Counter).Inc()
	} else {
		m.requests.WithLabelValues(method, code.String()).Inc()
	}
	o, ok := m.latencyByMethod.Load(method)
	if !ok {
		o, _ = m.latencyByMethod.LoadOrStore(method, m.latency.WithLabelValues(method))
	}
	o.(prometheus.Observer).Observe(d.Seconds())
}

// addItems adds n to the item counter of k.
func (m *metrics) addItems(k itemKey, n int) {
	c, ok := m.itemsByLabels.Load(k)
	if !ok {
		c, _ = m.itemsByLabels.LoadOrStore(k, m.items.WithLabelValues(k.op, k.vendor, k.template, k.domain, k.outcome))
	}
	c.(prometheus.Counter).Add(float64(n))
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenvault_requests_total",
			Help: "gRPC requests (HTTP calls included) by full method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokenvault_request_duration_seconds",
			Help:    "Request latency by full method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenvault_items_total",
			Help: "Tokenize/detokenize items by operation, vendor (vendor listener only), template, domain and outcome. Denied items carry no template or domain.",
		}, []string{"op", "vendor", "template", "domain", "outcome"}),
	}
	m.auditSeq = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tokenvault_audit_checkpoint_seq",
		Help: "Sequence number of the last signed audit checkpoint.",
	})
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenvault_alerts_total",
		Help: "Alerts fired, by rule and severity.",
	}, []string{"rule", "severity"})
	m.webhookFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tokenvault_alert_webhook_failures_total",
		Help: "Alerts whose webhook could not be delivered after every retry.",
	})
	// Every alert series exists from the start at 0, so increase() sees the first firing.
	for _, r := range [][2]string{{"canary", "critical"}, {"vendor_reveal_rate", "warning"}, {"grant_reveal_rate", "warning"},
		{"denial_burst", "warning"}, {"off_hours", "warning"}} {
		m.alerts.WithLabelValues(r[0], r[1])
	}
	m.witnessFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenvault_audit_witness_failures_total",
		Help: "Deliveries of a signed audit checkpoint to a witness that failed (retried with the latest checkpoint at the next tick), by witness.",
	}, []string{"witness"})
	m.reg.MustRegister(m.requests, m.latency, m.items, m.auditSeq, m.alerts, m.webhookFailures, m.witnessFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// vaultCollector reads the vault's gauges at scrape time.
type vaultCollector struct {
	s                                           *Server
	grants, keyAge, dataKeys, auditSeq, storeSz *prometheus.Desc
	sealed, storeDown                           *prometheus.Desc
	commits, writes, commitWaits, waitsTimedOut *prometheus.Desc
	filterBytes, filterSkips                    *prometheus.Desc
}

func newVaultCollector(s *Server) *vaultCollector {
	return &vaultCollector{
		s:             s,
		grants:        prometheus.NewDesc("tokenvault_live_grants", "Grants that are neither expired, revoked nor spent.", nil, nil),
		keyAge:        prometheus.NewDesc("tokenvault_primary_data_key_age_seconds", "Age of the primary data key.", nil, nil),
		dataKeys:      prometheus.NewDesc("tokenvault_data_keys", "Data keys in the keyset (primary, enabled and disabled).", nil, nil),
		auditSeq:      prometheus.NewDesc("tokenvault_audit_seq", "Sequence number of the newest audit event.", nil, nil),
		storeSz:       prometheus.NewDesc("tokenvault_store_bytes", "Bytes of the bbolt store in use (bbolt's high-water mark) plus its journal files not merged yet; the file itself may be larger, as bbolt grows it ahead. Not exported on PostgreSQL.", nil, nil),
		sealed:        prometheus.NewDesc("tokenvault_sealed", "1 while the vault is sealed (its KEK unavailable).", nil, nil),
		storeDown:     prometheus.NewDesc("tokenvault_store_unreachable", "1 while the store's database does not answer the server's periodic check (health NOT_SERVING).", nil, nil),
		commits:       prometheus.NewDesc("tokenvault_store_commits_total", "Group commits of the bbolt store since start, each one fsync. Not exported on PostgreSQL.", nil, nil),
		writes:        prometheus.NewDesc("tokenvault_store_writes_total", "Write transactions committed by the bbolt store since start; divided by tokenvault_store_commits_total, the writes that shared an fsync. Not exported on PostgreSQL.", nil, nil),
		commitWaits:   prometheus.NewDesc("tokenvault_store_commit_waits_total", "Groups the bbolt store's committer held back (at most --commit-delay) for more writes to share their fsync. Not exported on PostgreSQL.", nil, nil),
		waitsTimedOut: prometheus.NewDesc("tokenvault_store_commit_waits_timed_out_total", "Of tokenvault_store_commit_waits_total, the waits that lasted the whole --commit-delay (the expected writes did not come). Not exported on PostgreSQL.", nil, nil),
		filterBytes:   prometheus.NewDesc("tokenvault_store_key_filter_bytes", "Memory held by the bbolt store's key filter (--store-key-filter), including one being built; 0 before the first build ends or when off. Not exported on PostgreSQL.", nil, nil),
		filterSkips:   prometheus.NewDesc("tokenvault_store_key_filter_skips_total", "Reads of absent keys the bbolt store's key filter answered without reading the B-tree. Not exported on PostgreSQL.", nil, nil),
	}
}

func (c *vaultCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.grants, c.keyAge, c.dataKeys, c.auditSeq, c.storeSz, c.sealed, c.storeDown, c.commits, c.writes, c.commitWaits, c.waitsTimedOut, c.filterBytes, c.filterSkips} {
		ch <- d
	}
}

func (c *vaultCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.s.vlt()
	if v == nil {
		ch <- prometheus.MustNewConstMetric(c.sealed, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.sealed, prometheus.GaugeValue, 0)
	down := 0.0
	if c.s.storeDown.Load() {
		down = 1
	}
	ch <- prometheus.MustNewConstMetric(c.storeDown, prometheus.GaugeValue, down)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := v.Stats(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.grants, prometheus.GaugeValue, float64(st.LiveGrants))
	ch <- prometheus.MustNewConstMetric(c.keyAge, prometheus.GaugeValue, st.PrimaryKeyAge.Seconds())
	ch <- prometheus.MustNewConstMetric(c.dataKeys, prometheus.GaugeValue, float64(st.DataKeys))
	ch <- prometheus.MustNewConstMetric(c.auditSeq, prometheus.GaugeValue, float64(st.AuditSeq))
	if st.StoreBytes > 0 { // bbolt: the store's size and commit counters
		ch <- prometheus.MustNewConstMetric(c.storeSz, prometheus.GaugeValue, float64(st.StoreBytes))
		ch <- prometheus.MustNewConstMetric(c.commits, prometheus.CounterValue, float64(st.StoreCommits))
		ch <- prometheus.MustNewConstMetric(c.writes, prometheus.CounterValue, float64(st.StoreWrites))
		ch <- prometheus.MustNewConstMetric(c.commitWaits, prometheus.CounterValue, float64(st.StoreCommitWaits))
		ch <- prometheus.MustNewConstMetric(c.waitsTimedOut, prometheus.CounterValue, float64(st.StoreCommitWaitsTimedOut))
		ch <- prometheus.MustNewConstMetric(c.filterBytes, prometheus.GaugeValue, float64(st.StoreKeyFilterBytes))
		ch <- prometheus.MustNewConstMetric(c.filterSkips, prometheus.CounterValue, float64(st.StoreKeyFilterSkips))
	}
}
