package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// Result is what one run measured. Requests, Items, the rates and Latency cover the measured
// requests that succeeded; the failure counts and FirstError cover the whole run, warmup
// included.
type Result struct {
	Protocol    string        `json:"protocol"`
	Op          string        `json:"op"`
	Template    string        `json:"template"`
	Domain      string        `json:"domain,omitempty"`
	Batch       int           `json:"batch"`
	Concurrency int           `json:"concurrency"`
	Unique      *bool         `json:"unique,omitempty"` // tokenize: fresh values in every request
	Pool        int           `json:"pool,omitempty"`   // detokenize: tokens picked from
	Warmup      time.Duration `json:"-"`

	// Elapsed runs from the end of warmup to the reply to the last measured request.
	Elapsed        time.Duration `json:"-"`
	Requests       int64         `json:"requests"`
	Items          int64         `json:"items"` // successful items in measured requests
	RequestsPerSec float64       `json:"requests_per_s"`
	ItemsPerSec    float64       `json:"items_per_s"`
	Latency        Latency       `json:"latency"`

	FailedRequests int64  `json:"failed_requests"` // whole-call errors
	FailedItems    int64  `json:"failed_items"`    // per-item errors in calls that succeeded
	FirstError     string `json:"first_error,omitempty"`
	// TotalItems counts every item the server accepted: warmup, measurement and, for
	// detokenize, the pool setup's tokenize calls.
	TotalItems int64 `json:"total_items"`

	// ServerCPU is the server's CPU time (user plus system) over the load, warmup included,
	// when Config.ServerCPU could read it; ServerCPUPerItem divides it by the items the server
	// accepted in that time. Zero when not measured.
	ServerCPU        time.Duration `json:"-"`
	ServerCPUPerItem time.Duration `json:"-"`
	serverCPUItems   int64
}

// setServerCPU records cpu, spent by the server on items items.
func (r *Result) setServerCPU(cpu time.Duration, items int64) {
	if cpu < 0 || items <= 0 {
		return
	}
	r.ServerCPU, r.ServerCPUPerItem, r.serverCPUItems = cpu, cpu/time.Duration(items), items
}

// MarshalJSON adds elapsed_s, warmup_s and errors to the fields.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		plain
		ElapsedS         float64  `json:"elapsed_s"`
		WarmupS          float64  `json:"warmup_s"`
		Errors           int64    `json:"errors"`
		ServerCPUS       *float64 `json:"server_cpu_s,omitempty"`
		ServerCPUPerItem *float64 `json:"server_cpu_us_per_item,omitempty"`
	}{plain(r), r.Elapsed.Seconds(), r.Warmup.Seconds(), r.Errors(), r.serverCPUS(), r.serverCPUUSPerItem()})
}

func (r Result) serverCPUS() *float64 {
	if r.ServerCPU <= 0 {
		return nil
	}
	s := r.ServerCPU.Seconds()
	return &s
}

func (r Result) serverCPUUSPerItem() *float64 {
	if r.ServerCPU <= 0 {
		return nil
	}
	us := math.Round(float64(r.ServerCPUPerItem)/10) / 100 // µs, two decimals
	return &us
}

// Errors is the number of failed requests and failed items.
func (r *Result) Errors() int64 { return r.FailedRequests + r.FailedItems }

// Latency summarizes request latencies. Percentiles are exact, by the nearest-rank method
// over every sample.
type Latency struct {
	P50, P90, P99, Max, Mean time.Duration
}

// MarshalJSON writes the latencies in milliseconds.
func (l Latency) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return json.Marshal(map[string]float64{
		"p50_ms": ms(l.P50), "p90_ms": ms(l.P90), "p99_ms": ms(l.P99), "max_ms": ms(l.Max), "mean_ms": ms(l.Mean),
	})
}

// Summarize sorts samples in place and returns their percentiles; zero for no samples.
func Summarize(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	return Latency{
		P50:  Percentile(samples, 50),
		P90:  Percentile(samples, 90),
		P99:  Percentile(samples, 99),
		Max:  samples[len(samples)-1],
		Mean: sum / time.Duration(len(samples)),
	}
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted samples by the nearest-rank
// method: the smallest sample such that at least p% of the samples are less than or equal
// to it. It returns zero for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// Rank ⌈p/100·n⌉, computed in integers where p is whole to avoid 0.29*100 style error.
	var rank int
	if p == math.Trunc(p) {
		rank = (int(p)*n + 99) / 100
	} else {
		rank = int(math.Ceil(p / 100 * float64(n)))
	}
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// WriteText prints the result for people.
func (r *Result) WriteText(w io.Writer) error {
	what := fmt.Sprintf("%s over %s, template %s", r.Op, r.Protocol, r.Template)
	if r.Domain != "" {
		what += ", domain " + r.Domain
	}
	what += fmt.Sprintf(", batch %d, concurrency %d", r.Batch, r.Concurrency)
	switch {
	case r.Unique != nil && *r.Unique:
		what += ", fresh values"
	case r.Unique != nil:
		what += ", repeated values"
	default:
		what += fmt.Sprintf(", pool of %d tokens", r.Pool)
	}
	errs := "0"
	if r.Errors() > 0 {
		errs = fmt.Sprintf("%d (%d failed requests, %d failed items); first: %s", r.Errors(), r.FailedRequests, r.FailedItems, r.FirstError)
	}
	l := r.Latency
	_, err := fmt.Fprintf(w, `%s
elapsed:   %.2fs after %v warmup
requests:  %d (%.1f/s)
items:     %d (%.0f/s)
latency:   p50 %s  p90 %s  p99 %s  max %s  (mean %s)
errors:    %s
`, what, r.Elapsed.Seconds(), r.Warmup, r.Requests, r.RequestsPerSec, r.Items, r.ItemsPerSec,
		ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), ms(l.Mean), errs)
	if err == nil && r.ServerCPU > 0 {
		_, err = fmt.Fprintf(w, "server:    %.1fµs CPU per item (%.2fs CPU over %d items, warmup included)\n",
			float64(r.ServerCPUPerItem)/1e3, r.ServerCPU.Seconds(), r.serverCPUItems)
	}
	return err
}

// ms formats d in milliseconds with three significant figures or more.
func ms(d time.Duration) string {
	m := float64(d) / 1e6
	switch {
	case m >= 100:
		return fmt.Sprintf("%.0fms", m)
	case m >= 10:
		return fmt.Sprintf("%.1fms", m)
	default:
		return fmt.Sprintf("%.2fms", m)
	}
}
