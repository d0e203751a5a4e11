package ingest

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the ingester's Prometheus metrics. They are created per Ingester and registered
// on the registry the caller passes, so tests can run several ingesters in one process.
type Metrics struct {
	Received    prometheus.Counter
	Appended    prometheus.Counter
	Duplicates  prometheus.Counter
	Quarantined *prometheus.CounterVec
	Retries     prometheus.Counter
	Lag         prometheus.Gauge
	BatchSize   prometheus.Histogram
	AppendTime  prometheus.Histogram
}

// NewMetrics creates the metrics and registers them on reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lineage_ingest_received_total", Help: "Messages received from JetStream (redeliveries included).",
		}),
		Appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lineage_ingest_appended_total", Help: "Records durably appended to the log.",
		}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lineage_ingest_duplicates_total", Help: "Records whose id was already in the log with identical content (acked, not appended; over HTTP, not published).",
		}),
		Quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lineage_ingest_quarantined_total", Help: "Records moved to the quarantine stream by the ingester or by HTTP ingest, by reason (id_conflict: an id already logged with other content).",
		}, []string{"reason"}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lineage_ingest_retries_total", Help: "Messages handed back to JetStream for redelivery after a transient failure.",
		}),
		Lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lineage_ingest_lag_messages", Help: "Messages waiting in the stream behind the last one fetched.",
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "lineage_ingest_batch_size", Help: "Messages per ingest batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
		AppendTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "lineage_ingest_append_seconds", Help: "Time from batch start until its records are durably in the log.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Received, m.Appended, m.Duplicates, m.Quarantined, m.Retries, m.Lag, m.BatchSize, m.AppendTime)
	}
	return m
}
