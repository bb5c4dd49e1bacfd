package controllers

import (
	"strings"
	"time"
	"unicode/utf8"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// Plain functions of the reconciler; no API server involved.
var _ = Describe("Reconciler helpers", func() {
	pod := func(attempt string, restarts string, deleting bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelAttempt: attempt},
			Annotations: map[string]string{AnnotationRestarts: restarts}}}
		if deleting {
			p.DeletionTimestamp = ptr.To(metav1.Now())
		}
		return p
	}

	It("numbers a new attempt past every pod still around, terminating ones included", func() {
		Expect(nextAttempt(nil)).To(Equal(0))
		Expect(nextAttempt([]*corev1.Pod{pod("0", "0", true)})).To(Equal(1))
		Expect(nextAttempt([]*corev1.Pod{pod("3", "0", false), pod("1", "0", true)})).To(Equal(4))
		Expect(alivePods([]*corev1.Pod{pod("0", "0", true), pod("1", "0", false)})).To(HaveLen(1))
	})

	It("takes back a restart whose status write was lost from the pod it created", func() {
		job := &v1alpha1.FlinkJob{}
		job.Status.Restarts = 1
		job.Status.LastFailureTime = ptr.To(metav1.Now())
		s := &state{job: job, pods: []corev1.Pod{*pod("0", "0", false), *pod("1", "1", false)}}
		recoverRestarts(s)
		Expect(job.Status.Restarts).To(Equal(int32(1)))
		Expect(job.Status.LastFailureTime).NotTo(BeNil(), "nothing was lost")
		s.pods = append(s.pods, *pod("2", "2", false))
		recoverRestarts(s)
		Expect(job.Status.Restarts).To(Equal(int32(2)))
		Expect(job.Status.LastFailureTime).To(BeNil())
	})

	It("rounds the failure time up to whole seconds, so the stored time never shortens the delay", func() {
		now := time.Date(2026, 1, 2, 3, 4, 5, 900_000_000, time.UTC)
		r := &FlinkJobReconciler{Now: func() time.Time { return now }}
		job := &v1alpha1.FlinkJob{Spec: v1alpha1.FlinkJobSpec{RestartStrategy: &v1alpha1.RestartStrategy{
			Type: v1alpha1.RestartFixedDelay, Delay: "1s"}}}
		r.noteFailure(job)
		Expect(job.Status.LastFailureTime.Time).To(Equal(now.Truncate(time.Second).Add(time.Second)))
		Expect(r.waitLeft(job)).To(Equal(1100 * time.Millisecond))
		// What the API server gives back (RFC 3339, whole seconds) is the same.
		b, err := job.Status.LastFailureTime.MarshalJSON()
		Expect(err).NotTo(HaveOccurred())
		var back metav1.Time
		Expect(back.UnmarshalJSON(b)).To(Succeed())
		Expect(back.Time.Equal(job.Status.LastFailureTime.Time)).To(BeTrue())
	})

	DescribeTable("resolves restart strategies with Flink's defaults",
		func(rs *v1alpha1.RestartStrategy, restarts int32, wait time.Duration, exhausted bool) {
			p := policyOf(&v1alpha1.FlinkJob{Spec: v1alpha1.FlinkJobSpec{RestartStrategy: rs}})
			Expect(p.backoff(restarts)).To(Equal(wait))
			Expect(p.exhausted(restarts)).To(Equal(exhausted))
		},
		Entry("default: exponential from 1s", nil, int32(0), time.Second, false),
		Entry("default: x1.5 per restart", nil, int32(2), 2250*time.Millisecond, false),
		Entry("default: 3 attempts", nil, int32(3), 3375*time.Millisecond, true),
		Entry("exponential capped by maxDelay", &v1alpha1.RestartStrategy{Type: v1alpha1.RestartExponentialDelay, Delay: "1s", MaxDelay: "5s", BackoffMultiplier: "10"}, int32(2), 5*time.Second, false),
		Entry("fixed-delay", &v1alpha1.RestartStrategy{Type: v1alpha1.RestartFixedDelay, Delay: "2s", MaxAttempts: ptr.To(int32(5))}, int32(4), 2*time.Second, false),
		Entry("none", &v1alpha1.RestartStrategy{Type: v1alpha1.RestartNone}, int32(0), time.Second, true),
	)

	It("cuts Event notes to what events.k8s.io accepts, on a character boundary", func() {
		long := strings.Repeat("é", 2000) // 2 bytes each
		got := truncate(long, maxEventNote)
		Expect(len(got)).To(BeNumerically("<=", maxEventNote))
		Expect(utf8.ValidString(got)).To(BeTrue())
		Expect(got).To(HaveSuffix("..."))
		Expect(truncate("short", maxEventNote)).To(Equal("short"))
	})

	It("reaches a bare S3 endpoint over HTTPS, as the API documents, and tells the workers so", func() {
		// The scheme the operator's own client uses for the storage.
		s3Secure := func(endpoint string) bool {
			cl, err := connector.NewS3Client(connector.S3ConfigFrom(connector.EnvOf((&v1alpha1.S3Storage{Endpoint: endpoint}).WorkerEnv(), nil)))
			Expect(err).NotTo(HaveOccurred())
			return cl.EndpointURL().Scheme == "https"
		}
		Expect(s3Secure("s3.eu-west-1.amazonaws.com")).To(BeTrue())
		Expect(s3Secure("minio.minio:9000")).To(BeTrue())
		Expect(s3Secure("https://minio:9000")).To(BeTrue())
		Expect(s3Secure("http://minio:9000")).To(BeFalse())
		Expect(s3Secure("HTTP://minio:9000")).To(BeFalse())

		r := &FlinkJobReconciler{WorkerImage: testImage}
		job := &v1alpha1.FlinkJob{ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "ns", UID: "u"}}
		job.Spec.Storage = &v1alpha1.Storage{S3: &v1alpha1.S3Storage{Endpoint: "s3.eu-west-1.amazonaws.com", Bucket: "b"}}
		Expect(envOf(*r.subtaskPod(job, spec.Batch, 0, 0, 0))).To(HaveKeyWithValue("FLINKJOB_S3_SECURE", "true"))
		job.Spec.Storage.S3.Endpoint = "http://minio:9000"
		Expect(envOf(*r.subtaskPod(job, spec.Batch, 0, 0, 0))).NotTo(HaveKey("FLINKJOB_S3_SECURE"), "the scheme decides")
	})

	It("keeps its own annotations and labels when the pod template sets some", func() {
		r := &FlinkJobReconciler{WorkerImage: testImage}
		job := &v1alpha1.FlinkJob{ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "ns"}}
		job.Status.Restarts = 4
		job.Spec.PodTemplate = &v1alpha1.PodTemplate{Annotations: map[string]string{"a": "b"},
			Labels: map[string]string{LabelStage: "99", "team": "data"}}
		p := r.subtaskPod(job, spec.Streaming, 1, 2, 3)
		Expect(p.Annotations).To(Equal(map[string]string{"a": "b", AnnotationRestarts: "4"}))
		Expect(p.Labels).To(And(HaveKeyWithValue(LabelStage, "1"), HaveKeyWithValue("team", "data")))
		Expect(p.Name).To(Equal("j-s1-2-a3"))
	})
})
