package spec

import (
	"strings"
)

// KafkaSource reads Kafka topics, as Flink's KafkaSource: the partitions of
// the topics are split across the source's parallel subtasks (each
// partition read by exactly one), every record becomes
// {"key", "value", "topic", "partition", "offset", "timestamp", "headers"},
// and the record's Kafka timestamp is its event time unless source.timestamp
// says otherwise. With watermarks, each partition has its own watermark and a
// subtask emits the minimum over its partitions that are not idle (with a
// source.timestamp expression the watermark follows the subtask's largest
// timestamp instead). With checkpoints the offsets read are stored in each
// checkpoint (and committed back to groupId when it completes); a restore
// resumes right after them.
// +kubebuilder:validation:XValidation:rule="has(self.topics) != has(self.topicPattern)",message="a kafka source sets exactly one of topics, topicPattern"
type KafkaSource struct {
	// bootstrapServers are host:port addresses of Kafka brokers.
	// +kubebuilder:validation:MinItems=1
	// +listType=atomic
	BootstrapServers []string `json:"bootstrapServers"`
	// topics are the topics to read.
	// +optional
	// +listType=atomic
	Topics []string `json:"topics,omitempty"`
	// topicPattern is a regular expression (RE2, anchored) selecting the
	// topics to read: those that exist when the job starts and, when
	// unbounded, those created later (partition discovery).
	// +optional
	TopicPattern string `json:"topicPattern,omitempty"`
	// groupId is the consumer group whose committed offsets startingOffsets
	// committed reads, and to which offsets are committed when a checkpoint
	// completes. Partitions are assigned by the job, not by the group.
	// +optional
	GroupID string `json:"groupId,omitempty"`
	// format decodes record values: string (default), json, or bytes.
	// +kubebuilder:default=string
	// +optional
	Format KafkaFormat `json:"format,omitempty"`
	// keyFormat decodes record keys: string (default), json, or bytes.
	// +kubebuilder:default=string
	// +optional
	KeyFormat KafkaFormat `json:"keyFormat,omitempty"`
	// startingOffsets says where to start reading partitions that no
	// checkpoint has a position for (default earliest).
	// +optional
	StartingOffsets *KafkaOffsets `json:"startingOffsets,omitempty"`
	// stoppingOffsets makes the source bounded: each partition is read up to
	// these offsets (exclusive), then the source ends. Absent means unbounded.
	// +optional
	StoppingOffsets *KafkaOffsets `json:"stoppingOffsets,omitempty"`
	// properties are consumer settings by their Kafka names; supported:
	// client.id, isolation.level (read_uncommitted, read_committed),
	// fetch.max.bytes, fetch.min.bytes, fetch.max.wait.ms,
	// max.partition.fetch.bytes, request.timeout.ms,
	// commit.offsets.on.checkpoint (true/false, default true with groupId),
	// partition.discovery.interval.ms (how often an unbounded source looks
	// for new matching topics and new partitions, read from their earliest
	// offset; default 300000, 0 turns it off).
	// +optional
	Properties map[string]string `json:"properties,omitempty"`
	// security configures TLS and SASL.
	// +optional
	Security *KafkaSecurity `json:"security,omitempty"`
}

// KafkaFormat is how Kafka keys and values are decoded and encoded.
// +kubebuilder:validation:Enum=string;json;bytes
type KafkaFormat string

const (
	KafkaString KafkaFormat = "string"
	KafkaJSON   KafkaFormat = "json"
	KafkaBytes  KafkaFormat = "bytes"
)

// KafkaOffsetMode names a way to find an offset in each partition.
// +kubebuilder:validation:Enum=earliest;latest;committed;timestamp;specific
type KafkaOffsetMode string

const (
	// OffsetsEarliest is the first offset still in the partition.
	OffsetsEarliest KafkaOffsetMode = "earliest"
	// OffsetsLatest is the end of the partition when the job starts (the
	// last stable offset with isolation.level read_committed).
	OffsetsLatest KafkaOffsetMode = "latest"
	// OffsetsCommitted is the offset committed by groupId.
	OffsetsCommitted KafkaOffsetMode = "committed"
	// OffsetsTimestamp is the first record at or after timestamp.
	OffsetsTimestamp KafkaOffsetMode = "timestamp"
	// OffsetsSpecific are the offsets listed in offsets.
	OffsetsSpecific KafkaOffsetMode = "specific"
)

// KafkaOffsets says which offset of each partition to start (or stop) at.
type KafkaOffsets struct {
	// mode is earliest, latest, committed, timestamp or specific.
	Mode KafkaOffsetMode `json:"mode"`
	// timestamp in milliseconds since the epoch, for mode timestamp.
	// +optional
	Timestamp *int64 `json:"timestamp,omitempty"`
	// offsets for mode specific; a partition not listed starts at its
	// earliest offset (startingOffsets) or stops at its latest
	// (stoppingOffsets).
	// +optional
	// +listType=atomic
	Offsets []KafkaPartitionOffset `json:"offsets,omitempty"`
	// committedReset says what mode committed does in a partition the
	// group has no offset for: in startingOffsets start at earliest
	// (default) or latest, or fail (none); in stoppingOffsets stop at the
	// latest offset, or fail (none).
	// +kubebuilder:validation:Enum=earliest;latest;none
	// +optional
	CommittedReset string `json:"committedReset,omitempty"`
}

// KafkaPartitionOffset is an offset in one partition.
type KafkaPartitionOffset struct {
	// topic of the partition.
	// +kubebuilder:validation:MinLength=1
	Topic string `json:"topic"`
	// partition number within the topic.
	// +kubebuilder:validation:Minimum=0
	Partition int32 `json:"partition"`
	// offset of the first record to read (startingOffsets), or of the first
	// record not to read (stoppingOffsets).
	// +kubebuilder:validation:Minimum=0
	Offset int64 `json:"offset"`
}

// KafkaSink writes records to Kafka, as Flink's KafkaSink: key, value,
// headers and topic are CEL expressions over `record`, and the delivery
// guarantee is none, at-least-once (flush at every checkpoint and at the
// end) or exactly-once (Kafka transactions committed when a checkpoint
// completes; consumers must read with isolation.level read_committed).
type KafkaSink struct {
	// bootstrapServers are host:port addresses of Kafka brokers.
	// +kubebuilder:validation:MinItems=1
	// +listType=atomic
	BootstrapServers []string `json:"bootstrapServers"`
	// topic is the topic written to, unless topicExpression is set.
	// +optional
	Topic string `json:"topic,omitempty"`
	// topicExpression is a CEL expression over `record` giving each
	// record's topic (a string).
	// +optional
	TopicExpression string `json:"topicExpression,omitempty"`
	// key is a CEL expression over `record` giving the record's key; absent
	// means no key (records spread over partitions).
	// +optional
	Key string `json:"key,omitempty"`
	// value is a CEL expression over `record` giving the record's value;
	// absent means the record itself.
	// +optional
	Value string `json:"value,omitempty"`
	// headers maps header names to CEL expressions over `record`.
	// +optional
	Headers map[string]string `json:"headers,omitempty"`
	// format encodes values, and keys unless keyFormat is set: json
	// (default: the value's JSON), string (the value must be a string), or
	// bytes (bytes or a string).
	// +kubebuilder:default=json
	// +optional
	Format KafkaFormat `json:"format,omitempty"`
	// keyFormat encodes keys: json, string or bytes, as format does for
	// values. Absent means format, so a string key of a json sink is
	// written with JSON's quotes; set string for the plain text (what a
	// source's default keyFormat reads, and Kafka's StringSerializer writes).
	// +optional
	KeyFormat KafkaFormat `json:"keyFormat,omitempty"`
	// deliveryGuarantee is none, at-least-once (default) or exactly-once.
	// +kubebuilder:validation:Enum=none;at-least-once;exactly-once
	// +kubebuilder:default=at-least-once
	// +optional
	DeliveryGuarantee string `json:"deliveryGuarantee,omitempty"`
	// transactionalIdPrefix names this sink's Kafka transactions (required
	// for exactly-once; unique per job and sink, stable across restarts).
	// +kubebuilder:validation:MaxLength=200
	// +optional
	TransactionalIDPrefix string `json:"transactionalIdPrefix,omitempty"`
	// transactionTimeout is the Kafka transaction timeout (default 15m, the
	// broker's default maximum). A checkpoint must complete within it.
	// +optional
	TransactionTimeout Duration `json:"transactionTimeout,omitempty"`
	// properties are producer settings by their Kafka names; supported:
	// client.id, acks (all, 1, 0), linger.ms, compression.type (none, gzip,
	// snappy, lz4, zstd), max.request.size, request.timeout.ms,
	// buffer.memory.records (max records buffered).
	// +optional
	Properties map[string]string `json:"properties,omitempty"`
	// security configures TLS and SASL.
	// +optional
	Security *KafkaSecurity `json:"security,omitempty"`
}

// Kafka delivery guarantees.
const (
	DeliveryNone        = "none"
	DeliveryAtLeastOnce = "at-least-once"
	DeliveryExactlyOnce = "exactly-once"
)

// KafkaSecurity configures how a Kafka client authenticates. Secrets come
// from Secret references only: on Kubernetes the operator passes each one
// to the workers as an environment variable (SecretEnvName); locally the
// CLI reads the same variable.
type KafkaSecurity struct {
	// tls enables TLS to the brokers.
	// +optional
	TLS *KafkaTLS `json:"tls,omitempty"`
	// sasl enables SASL authentication.
	// +optional
	SASL *KafkaSASL `json:"sasl,omitempty"`
}

// KafkaTLS configures TLS to Kafka brokers.
type KafkaTLS struct {
	// caSecretRef holds PEM CA certificates to trust instead of the system roots.
	// +optional
	CASecretRef *SecretRef `json:"caSecretRef,omitempty"`
	// certSecretRef and keySecretRef hold a PEM client certificate and key (mutual TLS).
	// +optional
	CertSecretRef *SecretRef `json:"certSecretRef,omitempty"`
	// +optional
	KeySecretRef *SecretRef `json:"keySecretRef,omitempty"`
	// serverName overrides the name checked in the brokers' certificates.
	// +optional
	ServerName string `json:"serverName,omitempty"`
	// insecureSkipVerify disables certificate checks. For tests only.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// KafkaSASL configures SASL authentication.
type KafkaSASL struct {
	// mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	// +kubebuilder:validation:Enum=PLAIN;SCRAM-SHA-256;SCRAM-SHA-512
	Mechanism string `json:"mechanism"`
	// username, written in the manifest (or usernameSecretRef).
	// +optional
	Username string `json:"username,omitempty"`
	// usernameSecretRef holds the username.
	// +optional
	UsernameSecretRef *SecretRef `json:"usernameSecretRef,omitempty"`
	// passwordSecretRef holds the password.
	PasswordSecretRef *SecretRef `json:"passwordSecretRef"`
}

// SecretRef selects one key of a Secret (in the FlinkJob's namespace).
type SecretRef struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
	// key in the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// SecretEnvName is the environment variable that carries a secret to the
// engine: FLINKJOB_SECRET_<NAME>_<KEY>, upper case, with every character
// other than a letter or digit written as '_' (Secret "kafka-creds", key
// "password" is FLINKJOB_SECRET_KAFKA_CREDS_PASSWORD). The operator sets it
// on worker pods from the Secret; locally, export it before `flinkjob run`.
func SecretEnvName(r SecretRef) string {
	var b strings.Builder
	b.WriteString("FLINKJOB_SECRET_")
	up := func(s string) {
		for _, c := range s {
			switch {
			case c >= 'a' && c <= 'z':
				b.WriteRune(c - 'a' + 'A')
			case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
				b.WriteRune(c)
			default:
				b.WriteByte('_')
			}
		}
	}
	up(r.Name)
	b.WriteByte('_')
	up(r.Key)
	return b.String()
}

// SecretRefs lists every Secret reference of a job's connectors (Kafka
// security, files s3 keys), in step order and without duplicates, so the
// operator can pass each one to the workers.
func (j *Job) SecretRefs() []SecretRef {
	var out []SecretRef
	seen := map[SecretRef]bool{}
	add := func(r *SecretRef) {
		if r != nil && !seen[*r] {
			seen[*r] = true
			out = append(out, *r)
		}
	}
	sec := func(s *KafkaSecurity) {
		if s == nil {
			return
		}
		if t := s.TLS; t != nil {
			add(t.CASecretRef)
			add(t.CertSecretRef)
			add(t.KeySecretRef)
		}
		if s := s.SASL; s != nil {
			add(s.UsernameSecretRef)
			add(s.PasswordSecretRef)
		}
	}
	files := func(s *FileS3) {
		if s != nil {
			add(s.AccessKeySecretRef)
			add(s.SecretKeySecretRef)
		}
	}
	for i := range j.Steps {
		st := &j.Steps[i]
		if st.Source != nil && st.Source.Kafka != nil {
			sec(st.Source.Kafka.Security)
		}
		if st.Sink != nil && st.Sink.Kafka != nil {
			sec(st.Sink.Kafka.Security)
		}
		if st.Source != nil && st.Source.Files != nil {
			files(st.Source.Files.S3)
		}
		if st.Sink != nil && st.Sink.Files != nil {
			files(st.Sink.Files.S3)
		}
	}
	return out
}
