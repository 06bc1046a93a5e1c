package authorizenet

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsCountCallsByResult(t *testing.T) {
	status := http.StatusOK
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte("\ufeff" + `{"transactions":[],"messages":{"resultCode":"Ok","message":[{"code":"I00001","text":"Successful."}]}}`))
	}, time.Second)
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv.cfg.Metrics = m
	ctx := context.Background()
	if _, err := srv.GetUnsettledTransactionList(ctx, ListOptions{}); err != nil {
		t.Fatal(err)
	}
	status = http.StatusServiceUnavailable
	if _, err := srv.GetUnsettledTransactionList(ctx, ListOptions{}); err == nil {
		t.Fatal("a 503 was not an error")
	}
	if got := testutil.CollectAndCount(m.calls); got != 2 {
		t.Errorf("%d result series, want 2 (ok and the 503's)", got)
	}
	op := "getUnsettledTransactionListRequest"
	if got := testutil.ToFloat64(m.calls.WithLabelValues(op, "ok")); got != 1 {
		t.Errorf("ok calls = %v, want 1", got)
	}
	if got := testutil.CollectAndCount(m.duration); got != 1 {
		t.Errorf("%d duration series, want 1", got)
	}
}
