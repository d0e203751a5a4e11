package exporters

import "github.com/prometheus/client_golang/prometheus"

// metrics are the exporter's Prometheus series. Label values are bounded: kinds and statuses
// are fixed sets, schedule names come from the operator's schedule file.
type metrics struct {
	jobs          *prometheus.CounterVec
	running       prometheus.Gauge
	queued        prometheus.Gauge
	scanned       prometheus.Gauge
	total         prometheus.Gauge
	records       *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	scheduleRuns  *prometheus.CounterVec
	scheduleLast  *prometheus.GaugeVec
	publishErrors prometheus.Counter
	restarts      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lineage_export_jobs_total", Help: "Export jobs finished, by kind, trigger (api or schedule) and status (succeeded or failed).",
		}, []string{"kind", "trigger", "status"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lineage_export_running", Help: "Exports running now (0 or 1: exports run one at a time).",
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lineage_export_queued", Help: "Exports waiting to run.",
		}),
		scanned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lineage_export_progress_scanned_entries", Help: "Log entries the running export has read.",
		}),
		total: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lineage_export_progress_total_entries", Help: "Log entries the running export reads in all (its checkpoint's size).",
		}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lineage_export_records_total", Help: "Records written into export bundles, by kind.",
		}, []string{"kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lineage_export_duration_seconds", Help: "Wall time of export jobs, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.1, 3, 10),
		}, []string{"kind"}),
		scheduleRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lineage_export_schedule_runs_total", Help: "Scheduled exports by schedule entry and status (succeeded, failed, or skipped when the queue was full).",
		}, []string{"schedule", "status"}),
		scheduleLast: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lineage_export_schedule_last_success_timestamp_seconds", Help: "When each scheduled export last succeeded (Unix time): alert when it falls behind its cron.",
		}, []string{"schedule"}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lineage_export_record_publish_errors_total", Help: "Export runs whose own decision record could not be published (the run is then marked failed).",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lineage_export_job_restarts_total", Help: "Export jobs started again after their run was interrupted (cluster mode: lease lost, node died).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.jobs, m.running, m.queued, m.scanned, m.total, m.records, m.duration, m.scheduleRuns, m.scheduleLast, m.publishErrors, m.restarts)
	}
	return m
}
