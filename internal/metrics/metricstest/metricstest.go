// Package metricstest scrapes a /metrics endpoint for tests and sums its
// series.
package metricstest

import (
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// Families is a scrape, by family name.
type Families map[string]*dto.MetricFamily

// Scrape reads url's metrics in Prometheus's text format.
func Scrape(t testing.TB, url string) Families {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}

// matching is the family's series whose labels include each name=value.
func (m Families) matching(name string, labels ...string) []*dto.Metric {
	var out []*dto.Metric
series:
	for _, s := range m[name].GetMetric() {
		have := map[string]string{}
		for _, l := range s.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for _, want := range labels {
			k, v, _ := strings.Cut(want, "=")
			if have[k] != v {
				continue series
			}
		}
		out = append(out, s)
	}
	return out
}

// Value is the sum of the matching counters' or gauges' values; labels
// are name=value.
func (m Families) Value(name string, labels ...string) float64 {
	sum := 0.0
	for _, s := range m.matching(name, labels...) {
		sum += s.GetCounter().GetValue() + s.GetGauge().GetValue()
	}
	return sum
}

// Count is the sum of the matching histograms' observation counts.
func (m Families) Count(name string, labels ...string) float64 {
	sum := 0.0
	for _, s := range m.matching(name, labels...) {
		sum += float64(s.GetHistogram().GetSampleCount())
	}
	return sum
}
