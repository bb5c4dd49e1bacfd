//go:build e2e

package e2e

import (
	"fmt"
	"sort"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
)

// kafkaBroker is a development Kafka-protocol broker (flinkjob
// kafka-broker: franz-go's kfake, in memory) run as a pod from the worker
// image, behind the Service "kafka" in the jobs' namespace.
func kafkaBroker(topics ...string) []byte {
	args := []string{"kafka-broker", "--listen", "0.0.0.0:9092", "--advertise", fmt.Sprintf("kafka.%s.svc:9092", cfg.ns)}
	for _, t := range topics {
		args = append(args, "--topic", t)
	}
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "kafka", "namespace": cfg.ns, "labels": map[string]any{"app": "e2e-kafka"}},
		"spec": map[string]any{
			"automountServiceAccountToken": false,
			"securityContext":              map[string]any{"runAsNonRoot": true, "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
			"containers": []any{map[string]any{
				"name": "kafka", "image": cfg.workerRepo + ":" + cfg.workerTag, "imagePullPolicy": cfg.pullPolicy,
				"command": []any{"/flinkjob"}, "args": args,
				"ports":          []any{map[string]any{"name": "kafka", "containerPort": 9092}},
				"readinessProbe": map[string]any{"tcpSocket": map[string]any{"port": 9092}, "periodSeconds": 1},
				"securityContext": map[string]any{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
					"capabilities": map[string]any{"drop": []any{"ALL"}}},
			}},
		},
	}
	svc := map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": "kafka", "namespace": cfg.ns},
		"spec": map[string]any{"selector": map[string]any{"app": "e2e-kafka"},
			"ports": []any{map[string]any{"name": "kafka", "port": 9092, "targetPort": 9092}}},
	}
	var out []byte
	for _, o := range []any{pod, svc} {
		b, err := yaml.Marshal(o)
		Expect(err).NotTo(HaveOccurred())
		out = append(append(out, "---\n"...), b...)
	}
	return out
}

// kafkaSpecs are the Kafka connector specs (issue #9); the ordered
// operator container calls them, so they run with the operator installed.
func kafkaSpecs() {
	It("copies Kafka to Kafka exactly once through worker pod kills (checkpoints, Kafka transactions, read_committed)", func(ctx SpecContext) {
		const count, rate = 12000, 100
		bootstrap := []any{fmt.Sprintf("kafka.%s.svc:9092", cfg.ns)}
		dumpOnFailure("kafka-produce", "kafka-copy", "kafka-verify")
		By("a Kafka-protocol broker pod with topics in (1 partition) and out (3)")
		_, err := kubectlApply(ctx, kafkaBroker("in:1", "out:3"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_, _ = kubectl(ctx, "-n", cfg.ns, "delete", "pod,service", "kafka", "--ignore-not-found", "--wait=false")
		})
		_, err = kubectl(ctx, "-n", cfg.ns, "wait", "--for=condition=Ready", "pod/kafka", "--timeout=120s")
		Expect(err).NotTo(HaveOccurred())

		By(fmt.Sprintf("a job writing %d records to topic in at %d/s", count, rate))
		_, err = kubectlApply(ctx, flinkJob("kafka-produce", map[string]any{
			"runtimeMode": "STREAMING",
			"steps": []any{
				map[string]any{"name": "gen", "source": map[string]any{"datagen": map[string]any{
					"value": "'r' + string(seq)", "count": count, "ratePerSecond": rate}}},
				map[string]any{"name": "to-kafka", "sink": map[string]any{"kafka": map[string]any{
					"bootstrapServers": bootstrap, "topic": "in", "format": "string"}}},
			}}))
		Expect(err).NotTo(HaveOccurred())

		By("a checkpointed STREAMING job copying in to out exactly once while the records arrive")
		storage := map[string]any{"s3": map[string]any{"endpoint": cfg.podEndpoint, "bucket": cfg.bucket, "prefix": cfg.prefix,
			"credentialsSecretRef": map[string]any{"name": credentialsSecret}}}
		_, err = kubectlApply(ctx, flinkJob("kafka-copy", map[string]any{
			"runtimeMode":     "STREAMING",
			"parallelism":     2,
			"storage":         storage,
			"checkpointing":   map[string]any{"interval": "1s"},
			"restartStrategy": map[string]any{"type": "fixed-delay", "delay": "1s", "maxAttempts": 5},
			"steps": []any{
				map[string]any{"name": "in", "parallelism": 1, "source": map[string]any{"kafka": map[string]any{
					"bootstrapServers": bootstrap, "topics": []any{"in"}, "groupId": "kafka-copy",
					// Bounded: the job ends once it has read every record the producer writes.
					"stoppingOffsets": map[string]any{"mode": "specific", "offsets": []any{
						map[string]any{"topic": "in", "partition": 0, "offset": count}}}}}},
				map[string]any{"name": "tag", "parallelism": 1, "map": "record.value + '-copied'"},
				map[string]any{"name": "to-kafka", "sink": map[string]any{"kafka": map[string]any{
					"bootstrapServers": bootstrap, "topic": "out", "format": "string",
					"deliveryGuarantee": "exactly-once", "transactionalIdPrefix": "e2e-kafka-copy"}}},
			}}))
		Expect(err).NotTo(HaveOccurred())

		// Kill a sink subtask, then the source, each once two checkpoints
		// of the current attempt completed.
		var after int64
		for _, stage := range []string{"s1-1", "s0-0"} {
			job := waitFor(ctx, "kafka-copy", "two more checkpoints", 3*time.Minute, func(j *v1alpha1.FlinkJob) bool {
				return j.Status.Phase == v1alpha1.PhaseRunning && j.Status.LastCheckpoint != nil && j.Status.LastCheckpoint.ID >= after+2
			})
			victim := fmt.Sprintf("kafka-copy-%s-a%d", stage, job.Status.Attempt)
			By(fmt.Sprintf("killing %s after checkpoint %d", victim, job.Status.LastCheckpoint.ID))
			_, err = kubectl(ctx, "-n", cfg.ns, "delete", "pod", victim, "--wait=false")
			Expect(err).NotTo(HaveOccurred())
			job = waitFor(ctx, "kafka-copy", "the restart", 2*time.Minute, func(j *v1alpha1.FlinkJob) bool {
				return j.Status.Attempt > job.Status.Attempt
			})
			after = job.Status.LastCheckpoint.ID
		}
		waitSucceeded(ctx, "kafka-produce", 4*time.Minute)
		waitSucceeded(ctx, "kafka-copy", 5*time.Minute)
		job, err := getJob(ctx, "kafka-copy")
		Expect(err).NotTo(HaveOccurred())
		Expect(job.Status.Restarts).To(BeNumerically(">=", 2), "both kills restarted the job")

		By("a BATCH job reading out with read_committed into MinIO")
		out := fmt.Sprintf("%s/out/kafka-verify", cfg.prefix)
		_, err = kubectlApply(ctx, flinkJob("kafka-verify", map[string]any{
			"runtimeMode": "AUTOMATIC",
			"storage":     storage,
			"steps": []any{
				map[string]any{"name": "out", "source": map[string]any{"kafka": map[string]any{
					"bootstrapServers": bootstrap, "topics": []any{"out"},
					"properties":      map[string]any{"isolation.level": "read_committed"},
					"stoppingOffsets": map[string]any{"mode": "latest"}}}},
				map[string]any{"name": "values", "map": "record.value"},
				map[string]any{"name": "files", "sink": map[string]any{"files": map[string]any{
					"path": fmt.Sprintf("s3://%s/%s/", cfg.bucket, out), "format": "jsonl"}}},
			}}))
		Expect(err).NotTo(HaveOccurred())
		waitSucceeded(ctx, "kafka-verify", 4*time.Minute)
		var want []string
		for i := 0; i < count; i++ {
			want = append(want, fmt.Sprintf(`"r%d-copied"`, i))
		}
		sort.Strings(want)
		got := committedOutput(ctx, out)
		Expect(len(got)).To(Equal(count), "records in out (read_committed)")
		Expect(got).To(Equal(want), "each input record exactly once")
	}, NodeTimeout(15*time.Minute))
}
