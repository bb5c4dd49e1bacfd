package controllers

import (
	"math"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
)

// restartPolicy is a job's resolved restart strategy, with Flink's
// defaults for what the spec leaves out.
type restartPolicy struct {
	none        bool
	maxAttempts int32
	delay       time.Duration
	maxDelay    time.Duration
	multiplier  float64
	exponential bool
}

func policyOf(job *v1alpha1.FlinkJob) restartPolicy {
	p := restartPolicy{maxAttempts: 3, delay: time.Second, maxDelay: time.Minute, multiplier: 1.5, exponential: true}
	rs := job.Spec.RestartStrategy
	if rs == nil {
		return p
	}
	switch rs.Type {
	case v1alpha1.RestartNone:
		p.none = true
	case v1alpha1.RestartFixedDelay:
		p.exponential = false
	}
	if rs.MaxAttempts != nil {
		p.maxAttempts = *rs.MaxAttempts
	}
	if d, err := rs.Delay.Get(); err == nil && rs.Delay != "" {
		p.delay = d
	}
	if d, err := rs.MaxDelay.Get(); err == nil && rs.MaxDelay != "" {
		p.maxDelay = d
	}
	if m, err := strconv.ParseFloat(rs.BackoffMultiplier, 64); err == nil && m >= 1 {
		p.multiplier = m
	}
	return p
}

// exhausted reports whether another restart is not allowed.
func (p restartPolicy) exhausted(restarts int32) bool {
	return p.none || restarts >= p.maxAttempts
}

// backoff is the wait before restart number restarts+1.
func (p restartPolicy) backoff(restarts int32) time.Duration {
	if !p.exponential {
		return p.delay
	}
	d := time.Duration(float64(p.delay) * math.Pow(p.multiplier, float64(restarts)))
	if d > p.maxDelay || d < 0 {
		d = p.maxDelay
	}
	return d
}

// waitLeft is how long until the next restart may happen.
func (r *FlinkJobReconciler) waitLeft(job *v1alpha1.FlinkJob) time.Duration {
	if job.Status.LastFailureTime == nil {
		return 0
	}
	due := job.Status.LastFailureTime.Add(policyOf(job).backoff(job.Status.Restarts))
	return due.Sub(r.now())
}

// noteFailure records when a failure was seen, unless a restart is already
// waiting. The status stores whole seconds (metav1.Time), so the time is
// rounded up: rounding down would cut up to a second off the restart
// delay (all of a 1s fixed delay).
func (r *FlinkJobReconciler) noteFailure(job *v1alpha1.FlinkJob) {
	if job.Status.LastFailureTime == nil {
		now := r.now()
		t := now.Truncate(time.Second)
		if t.Before(now) {
			t = t.Add(time.Second)
		}
		mt := metav1.NewTime(t)
		job.Status.LastFailureTime = &mt
	}
}

// recoverRestarts takes back a restart whose status write was lost: the
// pod it created says which restart it was (AnnotationRestarts). The lost
// write had also cleared lastFailureTime.
func recoverRestarts(s *state) {
	for i := range s.pods {
		n, err := strconv.Atoi(s.pods[i].Annotations[AnnotationRestarts])
		if err == nil && int32(n) > s.job.Status.Restarts {
			s.job.Status.Restarts = int32(n)
			s.job.Status.LastFailureTime = nil
		}
	}
}
