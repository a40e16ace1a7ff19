package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are registered on a registry of the Server's own (no global state). Labels carry
// method names, codes, templates and domains, never values or tokens.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	items    *prometheus.CounterVec
	auditSeq prometheus.Gauge
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
			Help: "Tokenize/detokenize items by operation, template, domain and outcome.",
		}, []string{"op", "template", "domain", "outcome"}),
	}
	m.auditSeq = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tokenvault_audit_checkpoint_seq",
		Help: "Sequence number of the last signed audit checkpoint.",
	})
	m.reg.MustRegister(m.requests, m.latency, m.items, m.auditSeq,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
