package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
)

// Prometheus metrics, served by the manager through controller-runtime's registry.
var (
	jobsByPhase = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "flinkjob_jobs", Help: "FlinkJobs by phase, as last seen by this manager."}, []string{"phase"})
	jobPhaseTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flinkjob_job_phase_transitions_total", Help: "Phase changes of FlinkJobs, by new phase."}, []string{"phase"})
	stageDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "flinkjob_stage_duration_seconds", Help: "Time from a stage's start to its success.",
		Buckets: prometheus.ExponentialBuckets(0.5, 2, 14)}, []string{"mode"})
	restartsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flinkjob_restarts_total", Help: "Restarts after worker failures (BATCH: one subtask; STREAMING: every stage)."}, []string{"mode"})
	savepointsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flinkjob_savepoints_total", Help: "Savepoints that ended, by trigger type (MANUAL, UPGRADE, SUSPEND, FINAL) and result (completed, failed)."},
		[]string{"trigger", "result"})
	savepointsDisposedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flinkjob_savepoints_disposed_total", Help: "Savepoints deleted beyond the history limits (spec.savepointHistory)."})
	upgradesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flinkjob_upgrades_total", Help: "Upgrades of running STREAMING jobs after a spec change, by upgradeMode."}, []string{"mode"})
	checkpointsObserved = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flinkjob_checkpoints_observed_total", Help: "New completed checkpoints seen in jobs' control objects (status.lastCheckpoint changes)."})
)

func init() {
	metrics.Registry.MustRegister(jobsByPhase, jobPhaseTransitions, stageDuration, restartsTotal,
		savepointsTotal, savepointsDisposedTotal, upgradesTotal, checkpointsObserved)
}

var (
	phaseMu sync.Mutex
	phases  = map[types.UID]v1alpha1.Phase{}
)

// trackPhase keeps the jobs-by-phase gauge in step with one job's phase.
func trackPhase(job *v1alpha1.FlinkJob, p v1alpha1.Phase) {
	phaseMu.Lock()
	defer phaseMu.Unlock()
	if old, ok := phases[job.UID]; ok {
		jobsByPhase.WithLabelValues(string(old)).Dec()
	}
	phases[job.UID] = p
	jobsByPhase.WithLabelValues(string(p)).Inc()
}

// forgetPhase drops a deleted job from the gauge.
func forgetPhase(uid types.UID) {
	phaseMu.Lock()
	defer phaseMu.Unlock()
	if old, ok := phases[uid]; ok {
		jobsByPhase.WithLabelValues(string(old)).Dec()
		delete(phases, uid)
	}
}
