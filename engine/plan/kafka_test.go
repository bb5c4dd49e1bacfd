package plan

import (
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/spec"
)

const kafkaSrc = "  - name: src\n    source: {kafka: {bootstrapServers: ['k:9092'], topics: [t]%s}%s}\n"
const kafkaOut = "  - name: out\n    sink: {kafka: {bootstrapServers: ['k:9092'], topic: o%s}}\n"

// kSrc is a Kafka source step with more fields in kafka; fmtSrc also adds
// fields to the source itself.
func kSrc(fields string) string { return fmtSrc(fields, "") }
func fmtSrc(fields, outer string) string {
	s := strings.Replace(kafkaSrc, "%s", fields, 1)
	return strings.Replace(s, "%s", outer, 1)
}
func kOut(fields string) string { return strings.Replace(kafkaOut, "%s", fields, 1) }

var invalidKafkaJobs = []invalidCase{
	{name: "kafka no topics", yaml: steps("  - name: src\n    source: {kafka: {bootstrapServers: ['k:9092']}}\n", outStep),
		path: "spec.steps[0].source.kafka", msg: "set exactly one of topics, topicPattern"},
	{name: "kafka topics and pattern", yaml: steps(kSrc(", topicPattern: 'a.*'"), outStep),
		path: "spec.steps[0].source.kafka", msg: "not both"},
	{name: "kafka bad pattern", yaml: steps("  - name: src\n    source: {kafka: {bootstrapServers: ['k:9092'], topicPattern: 'a('}}\n", outStep),
		path: "spec.steps[0].source.kafka.topicPattern", msg: "is not a regular expression"},
	{name: "kafka bad bootstrap", yaml: steps("  - name: src\n    source: {kafka: {bootstrapServers: ['k'], topics: [t]}}\n", outStep),
		path: "spec.steps[0].source.kafka.bootstrapServers[0]", msg: `must be host:port, not "k"`},
	{name: "kafka unknown property", yaml: steps(kSrc(", properties: {auto.offset.reset: earliest}"), outStep),
		path: `spec.steps[0].source.kafka.properties["auto.offset.reset"]`, msg: "is not a supported property"},
	{name: "kafka bad isolation", yaml: steps(kSrc(", properties: {isolation.level: dirty}"), outStep),
		path: `spec.steps[0].source.kafka.properties["isolation.level"]`, msg: `must be one of read_uncommitted, read_committed, not "dirty"`},
	{name: "kafka committed without group", yaml: steps(kSrc(", startingOffsets: {mode: committed}"), outStep),
		path: "spec.steps[0].source.kafka.startingOffsets.mode", msg: "committed offsets need groupId"},
	{name: "kafka timestamp without timestamp", yaml: steps(kSrc(", startingOffsets: {mode: timestamp}"), outStep),
		path: "spec.steps[0].source.kafka.startingOffsets.timestamp", msg: "is required with mode timestamp"},
	{name: "kafka stop at earliest", yaml: steps(kSrc(", stoppingOffsets: {mode: earliest}"), outStep),
		path: "spec.steps[0].source.kafka.stoppingOffsets.mode", msg: "earliest cannot stop a source"},
	{name: "kafka specific offset negative", yaml: steps(kSrc(", startingOffsets: {mode: specific, offsets: [{topic: t, partition: 0, offset: -2}]}"), outStep),
		path: "spec.steps[0].source.kafka.startingOffsets.offsets[0].offset", msg: "must not be negative"},
	{name: "kafka bad format", yaml: steps(kSrc(", format: avro"), outStep),
		path: "spec.steps[0].source.kafka.format", msg: `must be string, json or bytes, not "avro"`},
	{name: "kafka unbounded in batch", yaml: "runtimeMode: BATCH\n" + steps(kSrc(""), outStep),
		path: "spec.steps[0].source", msg: "kafka without stoppingOffsets"},
	{name: "kafka sasl without password", yaml: steps(kSrc(", security: {sasl: {mechanism: PLAIN, username: u}}"), outStep),
		path: "spec.steps[0].source.kafka.security.sasl.passwordSecretRef", msg: "is required"},
	{name: "kafka sasl bad mechanism", yaml: steps(kSrc(", security: {sasl: {mechanism: GSSAPI, username: u, passwordSecretRef: {name: s, key: p}}}"), outStep),
		path: "spec.steps[0].source.kafka.security.sasl.mechanism", msg: `not "GSSAPI"`},
	{name: "kafka tls cert without key", yaml: steps(kSrc(", security: {tls: {certSecretRef: {name: s, key: c}}}"), outStep),
		path: "spec.steps[0].source.kafka.security.tls", msg: "certSecretRef and keySecretRef go together"},
	{name: "kafka sink no topic", yaml: steps(srcStep, "  - name: out\n    sink: {kafka: {bootstrapServers: ['k:9092']}}\n"),
		path: "spec.steps[1].sink.kafka", msg: "set exactly one of topic, topicExpression"},
	{name: "kafka sink bad keyFormat", yaml: steps(srcStep, kOut(", key: record.k, keyFormat: avro")),
		path: "spec.steps[1].sink.kafka.keyFormat", msg: `must be string, json or bytes, not "avro"`},
	{name: "kafka sink bad key", yaml: steps(srcStep, kOut(", key: 'record.'")),
		path: "spec.steps[1].sink.kafka.key", msg: `step "out"`},
	{name: "kafka sink bad header", yaml: steps(srcStep, kOut(", headers: {h: '1 +'}")),
		path: `spec.steps[1].sink.kafka.headers["h"]`, msg: `step "out"`},
	{name: "kafka sink exactly-once without prefix", yaml: steps(srcStep, kOut(", deliveryGuarantee: exactly-once")),
		path: "spec.steps[1].sink.kafka.transactionalIdPrefix", msg: "is required with deliveryGuarantee exactly-once"},
	{name: "kafka sink bad guarantee", yaml: steps(srcStep, kOut(", deliveryGuarantee: twice")),
		path: "spec.steps[1].sink.kafka.deliveryGuarantee", msg: `not "twice"`},
	{name: "kafka sink bad acks", yaml: steps(srcStep, kOut(", properties: {acks: '2'}")),
		path: `spec.steps[1].sink.kafka.properties["acks"]`, msg: "must be one of"},
	{name: "kafka sink exactly-once with acks 1", yaml: steps(srcStep, kOut(", deliveryGuarantee: exactly-once, transactionalIdPrefix: p, properties: {acks: '1'}")),
		path: `spec.steps[1].sink.kafka.properties["acks"]`, msg: "must be all with deliveryGuarantee exactly-once"},
	{name: "kafka sink short transaction timeout", yaml: steps(srcStep, kOut(", deliveryGuarantee: exactly-once, transactionalIdPrefix: p, transactionTimeout: 10ms")),
		path: "spec.steps[1].sink.kafka.transactionTimeout", msg: "at least 1s"},
}

func TestInvalidKafkaJobs(t *testing.T) {
	for _, c := range invalidKafkaJobs {
		t.Run(c.name, func(t *testing.T) {
			_, err := Build(parseJob(t, c.yaml), c.opts)
			wantErrorAt(t, err, c.path, c.msg, true)
		})
	}
}

func TestValidKafkaJobs(t *testing.T) {
	for name, y := range map[string]string{
		"bounded batch":                    "runtimeMode: BATCH\n" + steps(kSrc(", stoppingOffsets: {mode: latest}, groupId: g, startingOffsets: {mode: committed, committedReset: latest}"), outStep),
		"watermarks from kafka timestamps": steps(fmtSrc("", ", watermarks: {maxOutOfOrderness: 1s, idleness: 5s}"), outStep),
		"secured":                          steps(kSrc(", security: {tls: {caSecretRef: {name: kafka-ca, key: ca.crt}}, sasl: {mechanism: SCRAM-SHA-512, usernameSecretRef: {name: creds, key: user}, passwordSecretRef: {name: creds, key: password}}}"), outStep),
		"sink":                             steps(srcStep, kOut(", key: 'record.k', value: 'record', headers: {n: 'string(record.n)'}, deliveryGuarantee: exactly-once, transactionalIdPrefix: job-out, properties: {acks: all, linger.ms: '5'}")),
	} {
		t.Run(name, func(t *testing.T) {
			job := parseJob(t, y)
			g, err := Build(job, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if name == "bounded batch" && ResolveMode(job, "") != spec.Batch {
				t.Error("bounded kafka source not BATCH")
			}
			_ = g
		})
	}
	job := parseJob(t, steps(kSrc(", security: {sasl: {mechanism: PLAIN, username: u, passwordSecretRef: {name: creds, key: password}}}"), kOut(", security: {tls: {caSecretRef: {name: ca, key: ca.crt}}, sasl: {mechanism: PLAIN, username: u, passwordSecretRef: {name: creds, key: password}}}")))
	refs := job.SecretRefs()
	if len(refs) != 2 || refs[0] != (spec.SecretRef{Name: "creds", Key: "password"}) || refs[1] != (spec.SecretRef{Name: "ca", Key: "ca.crt"}) {
		t.Fatalf("SecretRefs = %v", refs)
	}
	if n := spec.SecretEnvName(refs[1]); n != "FLINKJOB_SECRET_CA_CA_CRT" {
		t.Fatalf("SecretEnvName = %s", n)
	}
}
