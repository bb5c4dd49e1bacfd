package controllers

// Checkpoints and savepoints, the manager's side. The checkpoint
// coordinator of a STREAMING job runs inside its leader worker (stage 0,
// subtask 0), not here: a STREAMING failure restarts every pod anyway, so
// the coordinator shares the job's fate, and the manager needs no network
// path to worker pods nor per-job coordination load. The manager talks to
// the job only through small JSON objects in the job's storage, under
// <jobdata>/control/, defined once for both sides in package worker/control
// (checkpoint-latest.json, savepoint-request.json, savepoint-<nonce>.json,
// savepoint-final.json).
//
// What the manager decides is which state each set of worker pods starts
// from (FLINKJOB_RESTORE_FROM), recorded in status.startedFrom before the
// pods are created, so a lost status write never starts pods from the wrong
// state: the first start uses spec.initialSavepointPath; a restart after a
// failure uses the latest completed checkpoint, or the savepoint the run
// started from when it has none yet; an upgrade or a resume uses what
// spec.upgradeMode says (status.nextStart). Starting from anything but the
// latest checkpoint clears the job's checkpoints first: they belong to
// another history of the state, and "latest" must never reach back to them.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/internal/jobcheck"
	"github.com/flinkjob/flinkjob/worker/control"
)

// DefaultSavepointTimeout is how long a savepoint may take before the
// operator gives up on it (a stop-with-savepoint then falls back to the
// latest checkpoint).
const DefaultSavepointTimeout = 5 * time.Minute

func (r *FlinkJobReconciler) savepointTimeout() time.Duration {
	if r.SavepointTimeout > 0 {
		return r.SavepointTimeout
	}
	return DefaultSavepointTimeout
}

func upgradeModeOf(job *v1alpha1.FlinkJob) v1alpha1.UpgradeMode {
	if job.Spec.UpgradeMode == "" {
		return v1alpha1.UpgradeStateless
	}
	return job.Spec.UpgradeMode
}

func savepointInfo(job *v1alpha1.FlinkJob) *v1alpha1.SavepointInfo {
	if job.Status.SavepointInfo == nil {
		job.Status.SavepointInfo = &v1alpha1.SavepointInfo{}
	}
	return job.Status.SavepointInfo
}

// clearTrigger forgets the savepoint in progress.
func clearTrigger(si *v1alpha1.SavepointInfo) {
	si.TriggerNonce, si.TriggerType, si.TriggerTime, si.TriggerStop = "", "", nil, false
}

// pendingSavepoint reports the savepoint in progress, if any.
func pendingSavepoint(job *v1alpha1.FlinkJob) *v1alpha1.SavepointInfo {
	if si := job.Status.SavepointInfo; si != nil && si.TriggerNonce != "" {
		return si
	}
	return nil
}

// specHash identifies what the worker pods run; a change upgrades a
// running STREAMING job. suspend, the savepoint nonce, restartStrategy,
// ttl, upgradeMode and the history limits are not part of it: they change
// how the operator acts, not what the pods run.
func specHash(job *v1alpha1.FlinkJob) string {
	b, _ := json.Marshal(struct {
		Job             spec.Job
		Image           string
		ImagePullPolicy corev1.PullPolicy
		Resources       corev1.ResourceRequirements
		PodTemplate     *v1alpha1.PodTemplate
		Checkpointing   *v1alpha1.Checkpointing
		FinalSavepoint  bool
	}{job.Spec.Job, job.Spec.Image, job.Spec.ImagePullPolicy, job.Spec.Resources, job.Spec.PodTemplate,
		job.Spec.Checkpointing, job.Spec.FinalSavepoint})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// specChanged reports whether the spec differs from the one the pods were
// started with: metadata.generation against status.appliedGeneration
// first (cheap), then the hash (a generation bump may only touch fields
// that need no restart, such as the savepoint nonce).
func specChanged(job *v1alpha1.FlinkJob) bool {
	st := &job.Status
	if st.AppliedSpecHash == "" || job.Generation == st.AppliedGeneration {
		return false
	}
	if specHash(job) == st.AppliedSpecHash {
		st.AppliedGeneration = job.Generation
		return false
	}
	return true
}

// triggerSavepoint asks the job's leader for a savepoint. The request is
// written before the status says so: a lost status write at worst leaves a
// request that the next pass writes again (the leader acts once per nonce).
func (r *FlinkJobReconciler) triggerSavepoint(ctx context.Context, s *state, typ v1alpha1.SavepointTriggerType, nonce string, stop bool) error {
	job := s.job
	b, _ := json.Marshal(control.SavepointRequest{Nonce: nonce, Stop: stop})
	if err := r.Storage.WriteControl(ctx, job, control.SavepointRequestObject, b); err != nil {
		return fmt.Errorf("requesting savepoint %s: %w", nonce, err)
	}
	si := savepointInfo(job)
	now := metav1.NewTime(r.now())
	si.TriggerNonce, si.TriggerType, si.TriggerTime, si.TriggerStop = nonce, typ, &now, stop
	what := "taking a savepoint"
	if stop {
		what = "stopping the job with a savepoint"
	}
	r.event(job, corev1.EventTypeNormal, "SavepointTriggered", fmt.Sprintf("%s (%s, nonce %s)", what, typ, nonce))
	s.requeue = time.Second
	return nil
}

// pollSavepoint looks for the result of the savepoint in progress. It
// returns done once there is one, the savepoint failed or timed out; on
// success the savepoint is in the history and res.Path is set.
func (r *FlinkJobReconciler) pollSavepoint(ctx context.Context, s *state) (done bool, res control.SavepointResult, err error) {
	job := s.job
	si := pendingSavepoint(job)
	if si == nil {
		return false, res, nil
	}
	b, err := r.Storage.ReadControl(ctx, job, control.SavepointResultObject(si.TriggerNonce))
	if err != nil {
		return false, res, fmt.Errorf("reading the result of savepoint %s: %w", si.TriggerNonce, err)
	}
	switch {
	case b != nil:
		res = parseSavepointResult(b, "result "+control.SavepointResultObject(si.TriggerNonce))
	case si.TriggerTime != nil && r.now().Sub(si.TriggerTime.Time) > r.savepointTimeout():
		res.Error = fmt.Sprintf("no result after %s", r.savepointTimeout())
	default:
		s.requeueWithin(time.Second)
		return false, res, nil
	}
	r.finishSavepoint(ctx, s, si.TriggerType, si.TriggerNonce, &res)
	clearTrigger(si)
	// A restarted leader must not act on the request again.
	if err := r.Storage.DeleteControl(ctx, job, control.SavepointRequestObject); err != nil {
		logf.FromContext(ctx).Error(err, "removing the savepoint request")
	}
	return true, res, nil
}

// parseSavepointResult reads a savepoint result object (what names it in
// errors); one that cannot be read or names no path is a failed savepoint.
func parseSavepointResult(b []byte, what string) control.SavepointResult {
	var res control.SavepointResult
	if err := json.Unmarshal(b, &res); err != nil {
		return control.SavepointResult{Error: fmt.Sprintf("unreadable %s: %v", what, err)}
	}
	if res.Error == "" && res.Path == "" {
		res.Error = "the result names no savepoint path"
	}
	return res
}

// finishSavepoint records a savepoint's outcome: history, Event, metric.
func (r *FlinkJobReconciler) finishSavepoint(ctx context.Context, s *state, typ v1alpha1.SavepointTriggerType, nonce string, res *control.SavepointResult) {
	job := s.job
	si := savepointInfo(job)
	if res.Error != "" {
		si.LastError = truncate(res.Error, 4096)
		savepointsTotal.WithLabelValues(string(typ), "failed").Inc()
		r.event(job, corev1.EventTypeWarning, "SavepointFailed", fmt.Sprintf("savepoint %s (%s) failed: %s", nonce, typ, res.Error))
		return
	}
	t := metav1.NewTime(r.now())
	if res.TimeMs > 0 {
		t = metav1.NewTime(time.UnixMilli(res.TimeMs))
	}
	sp := v1alpha1.Savepoint{Path: res.Path, Time: &t, TriggerType: typ, TriggerNonce: nonce, CheckpointID: res.CheckpointID}
	if last := si.LastSavepoint; last == nil || last.Path != sp.Path {
		si.LastSavepoint = &sp
		si.SavepointHistory = append(si.SavepointHistory, sp)
	}
	si.LastError = ""
	savepointsTotal.WithLabelValues(string(typ), "completed").Inc()
	r.event(job, corev1.EventTypeNormal, "SavepointCompleted", fmt.Sprintf("savepoint %s (%s) completed: %s", nonce, typ, res.Path))
	r.disposeSavepoints(ctx, s)
}

// disposeSavepoints deletes the savepoints beyond spec.savepointHistory's
// maxCount and maxAge, oldest first, as the Flink operator does. It never
// disposes the latest savepoint, one the job started or will start from,
// nor anything outside the job's savepoints URL (such as another job's
// savepoint given as initialSavepointPath).
func (r *FlinkJobReconciler) disposeSavepoints(ctx context.Context, s *state) {
	job := s.job
	si := job.Status.SavepointInfo
	if si == nil || len(si.SavepointHistory) == 0 || r.Storage == nil || !jobcheck.HasStorage(job) {
		return
	}
	maxCount, maxAge := 10, 24*time.Hour
	if h := job.Spec.SavepointHistory; h != nil {
		if h.MaxCount > 0 {
			maxCount = int(h.MaxCount)
		}
		if d, err := h.MaxAge.Get(); err == nil && h.MaxAge != "" && d > 0 {
			maxAge = d
		}
	}
	keep := map[string]bool{}
	if si.LastSavepoint != nil {
		keep[si.LastSavepoint.Path] = true
	}
	for _, st := range []*v1alpha1.StartInfo{job.Status.StartedFrom, job.Status.NextStart} {
		if st != nil && st.Kind == v1alpha1.StartSavepoint {
			keep[st.Path] = true
		}
	}
	now := r.now()
	var kept []v1alpha1.Savepoint
	excess := len(si.SavepointHistory) - maxCount
	for i, sp := range si.SavepointHistory {
		tooMany := i < excess
		tooOld := sp.Time != nil && now.Sub(sp.Time.Time) > maxAge
		if keep[sp.Path] || (!tooMany && !tooOld) {
			kept = append(kept, sp)
			continue
		}
		why := "older than maxAge " + maxAge.String()
		if tooMany {
			why = fmt.Sprintf("beyond maxCount %d", maxCount)
		}
		if err := r.Storage.DeleteSavepoint(ctx, job, sp.Path); err != nil {
			// Keep it in the history: the next pass tries again. A path
			// outside the job's savepoints is dropped from the history
			// but left in storage.
			if savepointUnderJob(job, sp.Path) {
				r.event(job, corev1.EventTypeWarning, "SavepointDisposalFailed", fmt.Sprintf("disposing savepoint %s: %v", sp.Path, err))
				kept = append(kept, sp)
				continue
			}
		}
		savepointsDisposedTotal.Inc()
		r.event(job, corev1.EventTypeNormal, "SavepointDisposed", fmt.Sprintf("disposed savepoint %s (%s): %s", sp.Path, sp.TriggerType, why))
	}
	si.SavepointHistory = kept
}

// savepointUnderJob reports whether path is a savepoint under the job's
// savepoints URL (the only ones the operator deletes).
func savepointUnderJob(job *v1alpha1.FlinkJob, path string) bool {
	base := savepointsURL(job)
	return base != "" && len(path) > len(base) && strings.HasPrefix(path, base)
}

// observeCheckpoint copies the leader's latest completed checkpoint into
// status.lastCheckpoint. The manager polls at about the checkpoint
// interval and the leader writes once per checkpoint, so most passes find
// the object unchanged: those cost one conditional request that transfers
// nothing (r.checkpointSeen has its ETag and content). The status is still
// compared with it on every pass, so a lost status write is made good
// without a read.
func (r *FlinkJobReconciler) observeCheckpoint(ctx context.Context, s *state) error {
	job := s.job
	if job.Spec.Checkpointing == nil || !jobcheck.HasStorage(job) || r.Storage == nil {
		return nil
	}
	now := r.now()
	seen, _ := r.checkpointSeen.get(job.UID, now)
	rd, err := r.Storage.ReadControlIfChanged(ctx, job, control.LatestObject, seen.etag)
	if err != nil {
		return err
	}
	c := seen.latest
	switch {
	case rd.Unchanged:
	case rd.Data == nil:
		r.checkpointSeen.forget(job.UID)
		return nil
	default:
		c = control.LatestCheckpoint{}
		if err := json.Unmarshal(rd.Data, &c); err != nil {
			r.checkpointSeen.forget(job.UID)
			return fmt.Errorf("reading %s: %w", control.LatestObject, err)
		}
		r.checkpointSeen.put(job.UID, seenCheckpoint{etag: rd.ETag, latest: c}, now)
	}
	if lc := job.Status.LastCheckpoint; lc != nil && lc.ID == c.ID && lc.Path == c.Path {
		return nil
	}
	t := metav1.NewTime(time.UnixMilli(c.TimeMs))
	job.Status.LastCheckpoint = &v1alpha1.CheckpointInfo{ID: c.ID, Path: c.Path, Time: &t}
	checkpointsObserved.Inc()
	return nil
}

// checkpointMemo remembers, per job, the checkpoint-latest.json the
// manager read last. Its zero value is ready. Jobs not observed for
// checkpointMemoIdle (finished, suspended, deleted: a running job is
// polled at least every 30s) are forgotten, so it holds about the running
// STREAMING jobs with checkpoints; a forgotten job's next pass reads the
// object again.
type checkpointMemo struct {
	mu        sync.Mutex
	jobs      map[types.UID]seenCheckpoint
	lastPrune time.Time
}

// seenCheckpoint is a checkpoint-latest.json as read: its ETag and content.
type seenCheckpoint struct {
	etag   string
	latest control.LatestCheckpoint
	used   time.Time
}

const checkpointMemoIdle = 10 * time.Minute

func (m *checkpointMemo) get(uid types.UID, now time.Time) (seenCheckpoint, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sc, ok := m.jobs[uid]
	if ok {
		sc.used = now
		m.jobs[uid] = sc
	}
	m.prune(now)
	return sc, ok
}

func (m *checkpointMemo) put(uid types.UID, sc seenCheckpoint, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.jobs == nil {
		m.jobs = map[types.UID]seenCheckpoint{}
	}
	sc.used = now
	m.jobs[uid] = sc
}

func (m *checkpointMemo) forget(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.jobs, uid)
}

// prune drops the jobs idle for checkpointMemoIdle, at most once per
// checkpointMemoIdle (m.mu held).
func (m *checkpointMemo) prune(now time.Time) {
	if now.Sub(m.lastPrune) < checkpointMemoIdle {
		return
	}
	m.lastPrune = now
	for uid, sc := range m.jobs {
		if now.Sub(sc.used) >= checkpointMemoIdle {
			delete(m.jobs, uid)
		}
	}
}

// pollInterval is how often a running STREAMING job's control objects are
// read: about the checkpoint interval, within [2s, 30s] (500 jobs must not
// flood the object store).
func pollInterval(job *v1alpha1.FlinkJob) time.Duration {
	d := 30 * time.Second
	if c := job.Spec.Checkpointing; c != nil {
		if iv, err := c.Interval.Get(); err == nil && iv < d {
			d = iv
		}
	}
	if d < 2*time.Second {
		d = 2 * time.Second
	}
	return d
}

// whileRunning is the savepoint and checkpoint work of a STREAMING job
// whose pods all run: status.lastCheckpoint, a changed
// savepointTriggerNonce, the savepoint in progress.
func (r *FlinkJobReconciler) whileRunning(ctx context.Context, s *state) error {
	job := s.job
	if !jobcheck.HasStorage(job) || r.Storage == nil {
		return nil
	}
	if err := r.observeCheckpoint(ctx, s); err != nil {
		return err
	}
	if job.Spec.Checkpointing != nil {
		s.requeueWithin(pollInterval(job))
	}
	if pendingSavepoint(job) != nil {
		_, _, err := r.pollSavepoint(ctx, s)
		return err
	}
	if n := job.Spec.SavepointTriggerNonce; n != nil {
		si := savepointInfo(job)
		if si.LastTriggerNonce == nil || *si.LastTriggerNonce != *n {
			si.LastTriggerNonce = n
			return r.triggerSavepoint(ctx, s, v1alpha1.SavepointManual, strconv.FormatInt(*n, 10), false)
		}
	}
	return nil
}

// stopWithSavepoint runs a stop-with-savepoint (an upgrade or a suspend
// with upgradeMode savepoint) to its end. It returns done once the pods
// may go; status.nextStart then says where the next pods start: the
// savepoint, or (it failed or timed out, or a worker failed meanwhile)
// the latest checkpoint, as Flink's last-state fallback.
func (r *FlinkJobReconciler) stopWithSavepoint(ctx context.Context, s *state, current []*corev1.Pod) (bool, error) {
	job := s.job
	si := pendingSavepoint(job)
	if _, msg := lostSubtask(job, current); msg != "" {
		res := control.SavepointResult{Error: "meanwhile " + msg}
		r.finishSavepoint(ctx, s, si.TriggerType, si.TriggerNonce, &res)
		clearTrigger(si)
		_ = r.Storage.DeleteControl(ctx, job, control.SavepointRequestObject)
		job.Status.NextStart = nil
		return true, nil
	}
	typ := si.TriggerType
	done, res, err := r.pollSavepoint(ctx, s)
	if err != nil || !done {
		return false, err
	}
	if res.Error != "" {
		job.Status.NextStart = nil
		r.event(job, corev1.EventTypeWarning, "LastStateFallback", fmt.Sprintf("the %s savepoint failed: the job restarts from its latest checkpoint", typ))
	} else {
		job.Status.NextStart = &v1alpha1.StartInfo{Kind: v1alpha1.StartSavepoint, Path: res.Path}
	}
	return true, nil
}

// startUpgrade begins the upgrade of a STREAMING job whose spec changed
// while its pods run.
func (r *FlinkJobReconciler) startUpgrade(ctx context.Context, s *state, allRunning bool) error {
	job := s.job
	mode := upgradeModeOf(job)
	upgradesTotal.WithLabelValues(string(mode)).Inc()
	r.event(job, corev1.EventTypeNormal, "Upgrading", fmt.Sprintf("the spec changed (generation %d): upgrading with upgradeMode %s", job.Generation, mode))
	switch mode {
	case v1alpha1.UpgradeSavepoint:
		if allRunning && r.Storage != nil && jobcheck.HasStorage(job) {
			return r.triggerSavepoint(ctx, s, v1alpha1.SavepointUpgrade, fmt.Sprintf("upgrade-%d", job.Generation), true)
		}
		// No leader to take a savepoint: the latest checkpoint, if any.
		job.Status.NextStart = nil
	case v1alpha1.UpgradeLastState:
		job.Status.NextStart = nil
	default:
		job.Status.NextStart = &v1alpha1.StartInfo{Kind: v1alpha1.StartFresh}
	}
	job.Status.Attempt++
	s.requeue = time.Millisecond
	return nil
}

// prepareStart decides, before any pod of the current attempt exists,
// which state it starts from, and applies the current spec (the ConfigMap
// and the stages of a changed dataflow). The status is written before the
// pods are created (the caller requeues).
func (r *FlinkJobReconciler) prepareStart(ctx context.Context, s *state) error {
	job := s.job
	st := &job.Status
	if err := r.applyDataflow(ctx, s); err != nil {
		return err
	}
	var start v1alpha1.StartInfo
	switch {
	case st.StartedFrom == nil && st.NextStart == nil:
		start.Kind = v1alpha1.StartFresh
		if p := job.Spec.InitialSavepointPath; p != "" {
			start = v1alpha1.StartInfo{Kind: v1alpha1.StartSavepoint, Path: p}
		}
		// The nonce a job is created with is not a request.
		if n := job.Spec.SavepointTriggerNonce; n != nil {
			savepointInfo(job).LastTriggerNonce = n
		}
	case st.NextStart != nil:
		start = *st.NextStart
	default:
		start.Kind = v1alpha1.StartFresh
		if st.StartedFrom.Kind == v1alpha1.StartSavepoint {
			start = v1alpha1.StartInfo{Kind: v1alpha1.StartSavepoint, Path: st.StartedFrom.Path}
		}
		if job.Spec.Checkpointing != nil && jobcheck.HasStorage(job) && r.Storage != nil {
			id, url, err := r.Storage.LatestCheckpoint(ctx, job)
			if err != nil {
				return fmt.Errorf("finding the latest checkpoint: %w", err)
			}
			if id > 0 {
				start = v1alpha1.StartInfo{Kind: v1alpha1.StartCheckpoint, Path: url}
			}
		}
	}
	if start.Kind != v1alpha1.StartCheckpoint && jobcheck.HasStorage(job) && r.Storage != nil {
		if err := r.Storage.ClearCheckpoints(ctx, job); err != nil {
			return fmt.Errorf("clearing old checkpoints: %w", err)
		}
		st.LastCheckpoint = nil
	}
	start.Attempt = st.Attempt
	st.StartedFrom = &start
	st.AppliedGeneration, st.AppliedSpecHash = job.Generation, specHash(job)
	if start.Kind != v1alpha1.StartFresh {
		r.event(job, corev1.EventTypeNormal, "Restoring", fmt.Sprintf("attempt %d starts from %s %s", start.Attempt, start.Kind, start.Path))
	}
	s.requeue = time.Millisecond
	return nil
}

// applyDataflow makes the ConfigMap and the status's stages match the
// current spec (a STREAMING job's dataflow may change; see upgradeMode).
func (r *FlinkJobReconciler) applyDataflow(ctx context.Context, s *state) error {
	job := s.job
	cm, err := desiredConfigMap(job)
	if err != nil {
		return err
	}
	var cur corev1.ConfigMap
	if err := r.reader().Get(ctx, client.ObjectKeyFromObject(cm), &cur); err != nil {
		if apierrors.IsNotFound(err) {
			err = r.createIfMissing(ctx, cm)
		}
		if err != nil {
			return err
		}
		cur.Data = cm.Data
	}
	if cur.Data[jobFileKey] != cm.Data[jobFileKey] {
		cur.Data = cm.Data
		if err := r.Update(ctx, &cur); err != nil {
			return err
		}
	}
	same := len(job.Status.Stages) == len(s.plan.Stages)
	for i := 0; same && i < len(s.plan.Stages); i++ {
		ps, st := s.plan.Stages[i], job.Status.Stages[i]
		same = ps.Name == st.Name && int32(ps.Parallelism) == st.Parallelism
	}
	if !same {
		job.Status.Stages = planStages(s.plan)
	}
	return nil
}

// recordFinalSavepoint records a finished job's final savepoint
// (spec.finalSavepoint) in the history.
func (r *FlinkJobReconciler) recordFinalSavepoint(ctx context.Context, s *state) error {
	job := s.job
	if !job.Spec.FinalSavepoint || !jobcheck.HasStorage(job) || r.Storage == nil {
		return nil
	}
	b, err := r.Storage.ReadControl(ctx, job, control.SavepointFinalObject)
	if err != nil {
		return fmt.Errorf("reading the final savepoint: %w", err)
	}
	res := control.SavepointResult{Error: "the job finished without writing " + control.SavepointFinalObject}
	if b != nil {
		res = parseSavepointResult(b, control.SavepointFinalObject)
	}
	r.finishSavepoint(ctx, s, v1alpha1.SavepointFinal, control.FinalNonce, &res)
	return nil
}

// suspendStreaming decides what a suspended STREAMING job resumes from
// (status.nextStart) and, with upgradeMode savepoint, stops it with a
// savepoint first. It returns done once the pods may be deleted.
func (r *FlinkJobReconciler) suspendStreaming(ctx context.Context, s *state) (bool, error) {
	job := s.job
	var current []*corev1.Pod
	for i := range s.pods {
		p := &s.pods[i]
		if p.Labels[LabelRole] == RoleWorker && labelInt(p, LabelAttempt) == int(job.Status.Attempt) && p.DeletionTimestamp.IsZero() {
			current = append(current, p)
		}
	}
	if si := pendingSavepoint(job); si != nil && si.TriggerStop {
		return r.stopWithSavepoint(ctx, s, current)
	}
	if si := pendingSavepoint(job); si != nil {
		// A manual savepoint in progress ends with the pods.
		clearTrigger(si)
	}
	switch upgradeModeOf(job) {
	case v1alpha1.UpgradeSavepoint:
		running := job.Status.Phase == v1alpha1.PhaseRunning && job.Status.LastFailureTime == nil &&
			allPodsRunning(current, job.Status.Stages)
		if running && r.Storage != nil && jobcheck.HasStorage(job) {
			nonce := fmt.Sprintf("suspend-%d", job.Status.Attempt)
			if err := r.triggerSavepoint(ctx, s, v1alpha1.SavepointSuspend, nonce, true); err != nil {
				return false, err
			}
			return false, nil
		}
		// Nothing running to take a savepoint: keep what the next start
		// was already going to use (the latest checkpoint otherwise).
	case v1alpha1.UpgradeLastState:
		job.Status.NextStart = nil
	default:
		// A job that never started keeps its first start
		// (initialSavepointPath).
		if job.Status.StartedFrom != nil {
			job.Status.NextStart = &v1alpha1.StartInfo{Kind: v1alpha1.StartFresh}
		}
	}
	return true, nil
}
