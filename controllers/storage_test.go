package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/internal/certs"
	"github.com/flinkjob/flinkjob/worker/control"
)

// controlReads counts the control object reads of every manager the suite
// starts (startManager wraps its real S3Storage in a countingStorage).
var controlReads = &readCounts{}

// readCounts is, per job and control object, how many reads transferred
// the object and how many found it unchanged (a conditional read).
type readCounts struct {
	mu        sync.Mutex
	read      map[string]int
	unchanged map[string]int
}

func readKey(job *v1alpha1.FlinkJob, name string) string {
	return job.Namespace + "/" + job.Name + "/" + name
}

func (c *readCounts) add(job *v1alpha1.FlinkJob, name string, rd ControlRead) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.read == nil {
		c.read, c.unchanged = map[string]int{}, map[string]int{}
	}
	switch {
	case rd.Unchanged:
		c.unchanged[readKey(job, name)]++
	case rd.Data != nil:
		c.read[readKey(job, name)]++
	}
}

// reads is how many times the manager read the job's control object name
// (a missing or unchanged one is not read).
func (c *readCounts) reads(job *v1alpha1.FlinkJob, name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read[readKey(job, name)]
}

// unchangedReads is how many times the manager found it unchanged.
func (c *readCounts) unchangedReads(job *v1alpha1.FlinkJob, name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unchanged[readKey(job, name)]
}

// countingStorage is the manager's real Storage, with its control object
// reads counted in counts.
type countingStorage struct {
	Storage
	counts *readCounts
}

func (s countingStorage) ReadControl(ctx context.Context, job *v1alpha1.FlinkJob, name string) ([]byte, error) {
	b, err := s.Storage.ReadControl(ctx, job, name)
	if err == nil {
		s.counts.add(job, name, ControlRead{Data: b})
	}
	return b, err
}

func (s countingStorage) ReadControlIfChanged(ctx context.Context, job *v1alpha1.FlinkJob, name, etag string) (ControlRead, error) {
	rd, err := s.Storage.ReadControlIfChanged(ctx, job, name, etag)
	if err == nil {
		s.counts.add(job, name, rd)
	}
	return rd, err
}

var _ = Describe("S3Storage", func() {
	It("reads a control object again only once its ETag changed, in one conditional request", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		job := newJob(ns, "control", fmt.Sprintf(counting, 1), withStorage())
		job.UID = types.UID("uid-" + randSuffix()) // the objects' key prefix; the job need not exist
		st := S3Storage{Client: k8sClient}
		name := control.LatestObject

		By("finding no object: no data, no ETag, no error")
		rd, err := st.ReadControlIfChanged(ctx, job, name, "")
		Expect(err).NotTo(HaveOccurred())
		Expect(rd).To(Equal(ControlRead{}))
		b, err := st.ReadControl(ctx, job, name)
		Expect(err).NotTo(HaveOccurred())
		Expect(b).To(BeNil())

		By("reading it with its ETag")
		Expect(st.WriteControl(ctx, job, name, []byte(`{"id":1}`))).To(Succeed())
		rd, err = st.ReadControlIfChanged(ctx, job, name, "")
		Expect(err).NotTo(HaveOccurred())
		Expect(string(rd.Data)).To(Equal(`{"id":1}`))
		Expect(rd.ETag).NotTo(BeEmpty())
		Expect(rd.Unchanged).To(BeFalse())
		first := rd.ETag

		By("not transferring it while the ETag is the same")
		rd, err = st.ReadControlIfChanged(ctx, job, name, first)
		Expect(err).NotTo(HaveOccurred())
		Expect(rd).To(Equal(ControlRead{ETag: first, Unchanged: true}))

		By("reading it again once it changed")
		Expect(st.WriteControl(ctx, job, name, []byte(`{"id":2}`))).To(Succeed())
		rd, err = st.ReadControlIfChanged(ctx, job, name, first)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(rd.Data)).To(Equal(`{"id":2}`))
		Expect(rd.ETag).NotTo(BeElementOf("", first))
		b, err = st.ReadControl(ctx, job, name)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(b)).To(Equal(`{"id":2}`))

		By("finding it gone after a delete, even with an ETag")
		Expect(st.DeleteControl(ctx, job, name)).To(Succeed())
		rd, err = st.ReadControlIfChanged(ctx, job, name, first)
		Expect(err).NotTo(HaveOccurred())
		Expect(rd).To(Equal(ControlRead{}))
	})

	It("trusts the CA of spec.storage.s3.tls.caSecretRef, in its own client and in the worker pods", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		ca, err := certs.Generate(GinkgoT().TempDir(), []string{"minio.example"}, time.Hour)
		Expect(err).NotTo(HaveOccurred())
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s3-ca"},
			Data: map[string][]byte{"ca.crt": ca}})).To(Succeed())
		job := newJob(ns, "ca", fmt.Sprintf(counting, 1), withStorage())
		job.Spec.Storage.S3.TLS = &v1alpha1.S3TLS{CASecretRef: &v1alpha1.SecretKeyRef{Name: "s3-ca", Key: "ca.crt"}}

		By("reading the PEM into the manager's S3 config")
		cfg, err := S3Storage{Client: k8sClient}.s3Config(ctx, job)
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.CAPEM).To(Equal(string(ca)))

		By("passing it to the workers from the Secret, not as a copy in the pod")
		var r FlinkJobReconciler
		pod := r.podSpec(job, spec.Streaming, "p", nil, nil, nil)
		var caEnv []corev1.EnvVar
		for _, e := range pod.Spec.Containers[0].Env {
			if e.Name == "FLINKJOB_S3_CA_PEM" {
				caEnv = append(caEnv, e)
			}
		}
		Expect(caEnv).To(HaveLen(1))
		Expect(caEnv[0].Value).To(BeEmpty())
		Expect(caEnv[0].ValueFrom.SecretKeyRef.Name).To(Equal("s3-ca"))
		Expect(caEnv[0].ValueFrom.SecretKeyRef.Key).To(Equal("ca.crt"))

		By("naming the field, the Secret and the key when the key is missing")
		job.Spec.Storage.S3.TLS.CASecretRef.Key = "ca.pem"
		_, err = S3Storage{Client: k8sClient}.s3Config(ctx, job)
		Expect(err).To(MatchError(ContainSubstring(`spec.storage.s3.tls.caSecretRef: Secret "s3-ca" has no key "ca.pem"`)))
	})
})
