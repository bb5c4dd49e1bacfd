package v1alpha1

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/engine/spec"
)

const sampleYAML = `
apiVersion: flinkjob.io/v1alpha1
kind: FlinkJob
metadata:
  name: wordcount
  namespace: analytics
spec:
  runtimeMode: BATCH
  parallelism: 2
  batchProcessingTime: IGNORE
  image: ghcr.io/flinkjob/worker:v1
  imagePullPolicy: IfNotPresent
  resources:
    requests: {cpu: 250m, memory: 256Mi}
  podTemplate:
    labels: {team: data}
    nodeSelector: {kubernetes.io/os: linux}
    tolerations: [{key: dedicated, operator: Exists, effect: NoSchedule}]
    serviceAccountName: worker
  storage:
    s3:
      endpoint: http://minio.minio:9000
      bucket: flinkjob
      prefix: jobs/
      region: us-east-1
      tls: {insecureSkipVerify: true}
      credentialsSecretRef: {name: s3-credentials, accessKeyKey: user}
  restartStrategy: {type: fixed-delay, maxAttempts: 2, delay: 5s, backoffMultiplier: "1.5"}
  suspend: true
  ttlSecondsAfterFinished: 600
  steps:
    - name: lines
      source:
        elements: [{"line": "to be or not to be"}, "plain", 42]
    - name: words
      flatMap: "record.line.split(' ').map(w, {'word': w, 'n': 1})"
    - name: counts
      keyBy: "record.word"
      reduce: "{'word': acc.word, 'n': acc.n + record.n}"
      parallelism: 4
    - name: out
      sink: {files: {path: "s3://output/wordcount/", format: jsonl}}
status:
  phase: Running
  resolvedMode: BATCH
  stagesDone: 1
  stagesTotal: 2
  stagesSummary: 1/2
  observedGeneration: 3
  conditions:
    - type: Running
      status: "True"
      reason: StageRunning
      message: stage 1 of 2 is running
      lastTransitionTime: "2026-01-02T03:04:05Z"
  stages:
    - {index: 0, name: lines+words, steps: [lines, words], parallelism: 2, phase: Succeeded, subtasksSucceeded: 2, recordsIn: 3, recordsOut: 7, attempts: 1}
    - {index: 1, name: counts+out, steps: [counts, out], parallelism: 4, phase: Running, subtasksRunning: 4, attempts: 2}
`

func decodeSample(t *testing.T) *FlinkJob {
	t.Helper()
	var fj FlinkJob
	// Strict: a field in the manifest that the Go type does not know fails.
	if err := yaml.UnmarshalStrict([]byte(sampleYAML), &fj); err != nil {
		t.Fatalf("decode sample: %v", err)
	}
	return &fj
}

func TestDecodeSample(t *testing.T) {
	fj := decodeSample(t)

	if fj.APIVersion != "flinkjob.io/v1alpha1" || fj.Kind != "FlinkJob" || fj.Name != "wordcount" || fj.Namespace != "analytics" {
		t.Errorf("type/object meta = %+v %+v", fj.TypeMeta, fj.ObjectMeta)
	}
	s := fj.Spec
	// The embedded spec.Job fields are top-level spec fields.
	if s.RuntimeMode != spec.Batch || s.Parallelism != 2 || s.BatchProcessingTime != spec.ProcessingTimeIgnore {
		t.Errorf("job fields = %q %d %q", s.RuntimeMode, s.Parallelism, s.BatchProcessingTime)
	}
	if len(s.Steps) != 4 {
		t.Fatalf("steps = %d, want 4", len(s.Steps))
	}
	if got := s.Steps[0].Source.Elements; len(got) != 3 ||
		string(got[0].Raw) != `{"line":"to be or not to be"}` || string(got[1].Raw) != `"plain"` || string(got[2].Raw) != `42` {
		t.Errorf("elements = %q", got)
	}
	if c := s.Steps[2]; c.KeyBy != "record.word" || c.Reduce == "" || c.Parallelism == nil || *c.Parallelism != 4 {
		t.Errorf("counts step = %+v", c)
	}
	if sink := s.Steps[3].Sink; sink == nil || sink.Files == nil || sink.Files.Format != spec.FormatJSONL {
		t.Errorf("sink = %+v", sink)
	}

	if s.Image != "ghcr.io/flinkjob/worker:v1" || s.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image = %q %q", s.Image, s.ImagePullPolicy)
	}
	if q := s.Resources.Requests[corev1.ResourceMemory]; q.Cmp(resource.MustParse("256Mi")) != 0 {
		t.Errorf("memory request = %v", q.String())
	}
	if pt := s.PodTemplate; pt == nil || pt.Labels["team"] != "data" || pt.ServiceAccountName != "worker" ||
		len(pt.Tolerations) != 1 || pt.Tolerations[0].Operator != corev1.TolerationOpExists {
		t.Errorf("podTemplate = %+v", pt)
	}
	s3 := s.Storage.S3
	if s3.Endpoint != "http://minio.minio:9000" || s3.Bucket != "flinkjob" || s3.Prefix != "jobs/" || s3.Region != "us-east-1" ||
		!s3.TLS.InsecureSkipVerify || s3.CredentialsSecretRef.Name != "s3-credentials" || s3.CredentialsSecretRef.AccessKeyKey != "user" {
		t.Errorf("s3 = %+v", s3)
	}
	if rs := s.RestartStrategy; rs.Type != RestartFixedDelay || *rs.MaxAttempts != 2 || rs.Delay != "5s" || rs.Delay.Millis() != 5000 || rs.BackoffMultiplier != "1.5" {
		t.Errorf("restartStrategy = %+v", rs)
	}
	if !s.Suspend || s.TTLSecondsAfterFinished == nil || *s.TTLSecondsAfterFinished != 600 {
		t.Errorf("suspend/ttl = %v %v", s.Suspend, s.TTLSecondsAfterFinished)
	}

	st := fj.Status
	if st.Phase != PhaseRunning || st.ResolvedMode != spec.Batch || st.ObservedGeneration != 3 || st.StagesSummary != "1/2" {
		t.Errorf("status = %+v", st)
	}
	if len(st.Conditions) != 1 || st.Conditions[0].Type != ConditionRunning || st.Conditions[0].Status != metav1.ConditionTrue {
		t.Errorf("conditions = %+v", st.Conditions)
	}
	if len(st.Stages) != 2 || st.Stages[1].Attempts != 2 || st.Stages[0].RecordsOut != 7 || st.Stages[0].Steps[1] != "words" {
		t.Errorf("stages = %+v", st.Stages)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	fj := decodeSample(t)
	b, err := json.Marshal(fj)
	if err != nil {
		t.Fatal(err)
	}
	var back FlinkJob
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fj, &back) {
		t.Errorf("round trip changed the object:\n%s", b)
	}
	// Unset optional fields stay out of the JSON.
	var empty FlinkJobSpec
	b, _ = json.Marshal(empty)
	if string(b) != `{"steps":null,"resources":{}}` {
		t.Errorf("empty spec = %s", b)
	}
}

func TestDeepCopyIsIndependent(t *testing.T) {
	orig := decodeSample(t)
	want := decodeSample(t)

	cp := orig.DeepCopy()
	if !reflect.DeepEqual(orig, cp) {
		t.Fatal("copy differs from original")
	}
	obj := orig.DeepCopyObject()
	if !reflect.DeepEqual(runtime.Object(orig), obj) {
		t.Fatal("DeepCopyObject differs from original")
	}

	// Change everything reachable through pointers, slices and maps.
	cp.Spec.Steps[0].Name = "changed"
	cp.Spec.Steps[0].Source.Elements[0].Raw[2] = 'X'
	cp.Spec.Steps[0].Source.Elements = append(cp.Spec.Steps[0].Source.Elements, spec.Value{Raw: []byte("1")})
	*cp.Spec.Steps[2].Parallelism = 99
	cp.Spec.Steps[3].Sink.Files.Path = "/elsewhere"
	cp.Spec.PodTemplate.Labels["team"] = "other"
	cp.Spec.PodTemplate.NodeSelector["new"] = "x"
	cp.Spec.PodTemplate.Tolerations[0].Key = "other"
	cp.Spec.Resources.Requests[corev1.ResourceCPU] = resource.MustParse("8")
	cp.Spec.Storage.S3.Bucket = "other"
	cp.Spec.Storage.S3.TLS.InsecureSkipVerify = false
	cp.Spec.Storage.S3.CredentialsSecretRef.Name = "other"
	*cp.Spec.RestartStrategy.MaxAttempts = 7
	*cp.Spec.TTLSecondsAfterFinished = 1
	cp.Status.Conditions[0].Reason = "Other"
	cp.Status.Stages[0].Steps[0] = "other"
	cp.Status.Stages[1].Phase = StageFailed
	cp.Labels = map[string]string{"a": "b"}

	if !reflect.DeepEqual(orig, want) {
		t.Errorf("changing the copy changed the original:\n got %+v\nwant %+v", orig.Spec, want.Spec)
	}

	var nilJob *FlinkJob
	if nilJob.DeepCopy() != nil {
		t.Error("DeepCopy of nil is not nil")
	}
	list := &FlinkJobList{Items: []FlinkJob{*orig}}
	lcp := list.DeepCopyObject().(*FlinkJobList)
	lcp.Items[0].Spec.Steps[1].FlatMap = "x"
	if list.Items[0].Spec.Steps[1].FlatMap == "x" {
		t.Error("list copy shares steps with the original")
	}
}

func TestScheme(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"FlinkJob", "FlinkJobList"} {
		if !s.Recognizes(GroupVersion.WithKind(kind)) {
			t.Errorf("scheme does not know %s", kind)
		}
	}
	gvks, _, err := s.ObjectKinds(&FlinkJob{})
	if err != nil || len(gvks) != 1 || gvks[0].Group != "flinkjob.io" || gvks[0].Version != "v1alpha1" {
		t.Errorf("ObjectKinds = %v, %v", gvks, err)
	}
	if r := Resource("flinkjobs"); r.Group != "flinkjob.io" || r.Resource != "flinkjobs" {
		t.Errorf("Resource = %v", r)
	}
}

func TestSyncStageCounts(t *testing.T) {
	st := FlinkJobStatus{Stages: []StageStatus{
		{Index: 0, Phase: StageSucceeded}, {Index: 1, Phase: StageRunning}, {Index: 2, Phase: StagePending},
	}}
	st.SyncStageCounts()
	if st.StagesDone != 1 || st.StagesTotal != 3 || st.StagesSummary != "1/3" {
		t.Errorf("counts = %d %d %q", st.StagesDone, st.StagesTotal, st.StagesSummary)
	}
	var empty FlinkJobStatus
	empty.SyncStageCounts()
	if empty.StagesSummary != "0/0" {
		t.Errorf("empty summary = %q", empty.StagesSummary)
	}
}

// The CRD test objects that the apiserver admits (config/crd/testdata/valid,
// checked by hack/crdcheck) must also decode strictly into the Go types, so
// the types and the generated schema cannot drift apart unnoticed.
func TestValidTestObjectsDecodeStrictly(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "crd", "testdata", "valid", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no test objects under config/crd/testdata/valid")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var fj FlinkJob
			if err := yaml.UnmarshalStrict(data, &fj); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if len(fj.Spec.Steps) == 0 {
				t.Error("no steps decoded")
			}
		})
	}
}
