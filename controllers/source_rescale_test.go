package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// rescaleSource is a checkpointed STREAMING job whose source runs at its
// own parallelism; %s is the source.
const rescaleSource = `
runtimeMode: STREAMING
parallelism: 2
upgradeMode: savepoint
checkpointing: {interval: 1s}
storage: {s3: {endpoint: "http://127.0.0.1:9000", bucket: b, credentialsSecretRef: {name: s3}}}
steps:
  - name: src
    parallelism: %d
    source: %s
  - name: counts
    keyBy: record.k
    reduce: "{'k': acc.k, 'n': acc.n + 1}"
  - name: out
    sink: {print: {}}
`

// A stateful upgrade may change a Kafka source's parallelism (its
// partitions are reassigned on restore), and no other source's: the
// webhook refuses those, naming the step's parallelism field.
func TestSourceRescaleOnUpgrade(t *testing.T) {
	kafka := `{kafka: {bootstrapServers: ["127.0.0.1:9092"], topics: [t], groupId: g, format: json}}`
	datagen := `{datagen: {value: "{'k': seq % 10}"}}`
	job := func(src string, p int) *v1alpha1.FlinkJob {
		j := &v1alpha1.FlinkJob{}
		j.Name, j.Namespace = "j", "ns"
		if err := yaml.UnmarshalStrict([]byte(fmt.Sprintf(rescaleSource, p, src)), &j.Spec); err != nil {
			t.Fatal(err)
		}
		return j
	}
	for _, tc := range []struct {
		name, src string
		refused   bool
	}{{"kafka", kafka, false}, {"datagen", datagen, true}} {
		old, upd := job(tc.src, 2), job(tc.src, 3)
		if p, err := PlanJob(upd); err != nil || p.Mode != spec.Streaming {
			t.Fatalf("%s: plan: %v", tc.name, err)
		}
		_, err := Validator{}.ValidateUpdate(context.Background(), old, upd)
		if !tc.refused && err != nil {
			t.Errorf("%s: rescaling the source was refused: %v", tc.name, err)
		}
		if tc.refused && (err == nil || !strings.Contains(err.Error(), "spec.steps[0].parallelism") ||
			!strings.Contains(err.Error(), "source step src")) {
			t.Errorf("%s: want the rescale refused at spec.steps[0].parallelism, got %v", tc.name, err)
		}
	}
}
