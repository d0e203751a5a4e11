package witness

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the witnessing metrics (docs/WITNESSES.md lists them with the alarms to set).
type metrics struct {
	requests         *prometheus.CounterVec // {witness, result}
	differentHistory *prometheus.CounterVec // {witness}
	quorumMet        prometheus.Gauge       // 1/0
	unwitnessed      prometheus.Gauge       // open mode: serving a checkpoint below the quorum
	lag              prometheus.Gauge       // inner size − newest checkpoint meeting the quorum
	latency          prometheus.Histogram   // inner checkpoint first seen → quorum met
	lastCosigned     *prometheus.GaugeVec   // {witness}
	persistErrors    prometheus.Counter     // failed writes of the state file
	servedSize       prometheus.Gauge       // size of the newest checkpoint meeting the quorum
}

func newMetrics(reg prometheus.Registerer, p *Policy) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lineage_witness_requests_total",
			Help: "add-checkpoint requests to each witness, by result (ok, conflict, refused, unreachable, bad_response).",
		}, []string{"witness", "result"}),
		differentHistory: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lineage_witness_different_history_total",
			Help: "Answers showing that a witness holds a different history of this log (a fork or split view): a 422, or a 409 that cannot be resolved.",
		}, []string{"witness"}),
		quorumMet: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lineage_witness_quorum_met",
			Help: "1 when the newest checkpoint of the log met the witness quorum, 0 once every witness answered for it without meeting the quorum.",
		}),
		unwitnessed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lineage_witness_serving_unwitnessed",
			Help: "1 when --witness-mode open serves a checkpoint whose cosignatures do not meet the quorum (an alarm), else 0.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lineage_witness_checkpoint_lag_entries",
			Help: "Entries in the log's newest checkpoint beyond the newest checkpoint that met the witness quorum.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lineage_witness_latency_seconds",
			Help:    "Time from a new checkpoint of the log first seen to its cosignatures meeting the witness quorum.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 17), // 1 ms .. 65 s
		}),
		lastCosigned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lineage_witness_last_cosigned_size",
			Help: "Tree size of the latest checkpoint each witness cosigned.",
		}, []string{"witness"}),
		persistErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lineage_witness_persist_errors_total",
			Help: "Failed writes of the newest cosigned checkpoint to the data dir.",
		}),
		servedSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lineage_witness_cosigned_size",
			Help: "Tree size of the newest checkpoint that met the witness quorum.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.differentHistory, m.quorumMet, m.unwitnessed, m.lag,
		m.latency, m.lastCosigned, m.persistErrors, m.servedSize} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every series exists from the start, so an alarm on a rate or an absent series works
	// before the first failure.
	for _, w := range p.Witnesses {
		for _, r := range []string{ResultOK, ResultConflict, ResultRefused, ResultUnreachable, ResultBadResponse} {
			m.requests.WithLabelValues(w.Name, r)
		}
		m.differentHistory.WithLabelValues(w.Name)
		m.lastCosigned.WithLabelValues(w.Name)
	}
	return m, nil
}
