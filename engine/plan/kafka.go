package plan

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// KafkaSourceProperties are the consumer properties a Kafka source accepts,
// with a check of each value (nil: any non-empty string).
var KafkaSourceProperties = map[string]func(string) error{
	"client.id":                    nil,
	"isolation.level":              oneOf("read_uncommitted", "read_committed"),
	"fetch.max.bytes":              positiveInt,
	"fetch.min.bytes":              positiveInt,
	"fetch.max.wait.ms":            positiveInt,
	"max.partition.fetch.bytes":    positiveInt,
	"request.timeout.ms":           positiveInt,
	"commit.offsets.on.checkpoint": oneOf("true", "false"),
	// 0 turns discovery off; the default is 5 minutes (unbounded sources).
	"partition.discovery.interval.ms": nonNegativeInt,
}

// KafkaSinkProperties are the producer properties a Kafka sink accepts.
var KafkaSinkProperties = map[string]func(string) error{
	"client.id":             nil,
	"acks":                  oneOf("all", "-1", "1", "0"),
	"linger.ms":             nonNegativeInt,
	"compression.type":      oneOf("none", "gzip", "snappy", "lz4", "zstd"),
	"max.request.size":      positiveInt,
	"request.timeout.ms":    positiveInt,
	"buffer.memory.records": positiveInt,
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		for _, x := range vals {
			if v == x {
				return nil
			}
		}
		return fmt.Errorf("must be one of %s, not %q", strings.Join(vals, ", "), v)
	}
}

func positiveInt(v string) error {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n <= 0 {
		return fmt.Errorf("must be a positive integer, not %q", v)
	}
	return nil
}

func nonNegativeInt(v string) error {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 0 {
		return fmt.Errorf("must be a non-negative integer, not %q", v)
	}
	return nil
}

func checkKafkaProperties(path string, props map[string]string, known map[string]func(string) error, el *errList) {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kp := fmt.Sprintf("%s[%q]", path, k)
		check, ok := known[k]
		if !ok {
			names := make([]string, 0, len(known))
			for n := range known {
				names = append(names, n)
			}
			sort.Strings(names)
			el.add(kp, "is not a supported property (supported: %s)", strings.Join(names, ", "))
			continue
		}
		if props[k] == "" {
			el.add(kp, "is empty")
		} else if check != nil {
			if err := check(props[k]); err != nil {
				el.add(kp, "%v", err)
			}
		}
	}
}

func checkBootstrap(path string, servers []string, el *errList) {
	if len(servers) == 0 {
		el.add(path, "is required: at least one host:port")
	}
	for i, s := range servers {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			el.add(fmt.Sprintf("%s[%d]", path, i), "must be host:port, not %q", s)
		}
	}
}

func checkKafkaFormat(path string, f spec.KafkaFormat, el *errList) {
	switch f {
	case "", spec.KafkaString, spec.KafkaJSON, spec.KafkaBytes:
	default:
		el.add(path, "must be string, json or bytes, not %q", f)
	}
}

func checkSecretRef(path string, r *spec.SecretRef, el *errList) {
	if r == nil {
		return
	}
	if r.Name == "" {
		el.add(path+".name", "is required")
	}
	if r.Key == "" {
		el.add(path+".key", "is required")
	}
}

func checkKafkaSecurity(path string, s *spec.KafkaSecurity, el *errList) {
	if s == nil {
		return
	}
	if t := s.TLS; t != nil {
		checkSecretRef(path+".tls.caSecretRef", t.CASecretRef, el)
		checkSecretRef(path+".tls.certSecretRef", t.CertSecretRef, el)
		checkSecretRef(path+".tls.keySecretRef", t.KeySecretRef, el)
		if (t.CertSecretRef == nil) != (t.KeySecretRef == nil) {
			el.add(path+".tls", "certSecretRef and keySecretRef go together (a client certificate needs its key)")
		}
		if t.InsecureSkipVerify && t.CASecretRef != nil {
			el.add(path+".tls", "set either insecureSkipVerify or caSecretRef, not both")
		}
	}
	if a := s.SASL; a != nil {
		switch a.Mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			el.add(path+".sasl.mechanism", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, not %q", a.Mechanism)
		}
		if (a.Username == "") == (a.UsernameSecretRef == nil) {
			el.add(path+".sasl", "set exactly one of username, usernameSecretRef")
		}
		checkSecretRef(path+".sasl.usernameSecretRef", a.UsernameSecretRef, el)
		if a.PasswordSecretRef == nil {
			el.add(path+".sasl.passwordSecretRef", "is required: the password comes from a Secret")
		}
		checkSecretRef(path+".sasl.passwordSecretRef", a.PasswordSecretRef, el)
	}
}

func checkKafkaOffsets(path string, o *spec.KafkaOffsets, stopping bool, groupID string, el *errList) {
	if o == nil {
		return
	}
	switch o.Mode {
	case spec.OffsetsEarliest:
		if stopping {
			el.add(path+".mode", "earliest cannot stop a source (it would read nothing); use latest, committed, timestamp or specific")
		}
	case spec.OffsetsLatest, spec.OffsetsSpecific:
	case spec.OffsetsCommitted:
		if groupID == "" {
			el.add(path+".mode", "committed offsets need groupId")
		}
	case spec.OffsetsTimestamp:
		if o.Timestamp == nil {
			el.add(path+".timestamp", "is required with mode timestamp (milliseconds since the epoch)")
		} else if *o.Timestamp < 0 {
			el.add(path+".timestamp", "must not be negative")
		}
	case "":
		el.add(path+".mode", "is required: earliest, latest, committed, timestamp or specific")
	default:
		el.add(path+".mode", "must be earliest, latest, committed, timestamp or specific, not %q", o.Mode)
	}
	if o.Timestamp != nil && o.Mode != spec.OffsetsTimestamp {
		el.add(path+".timestamp", "is only used with mode timestamp")
	}
	if len(o.Offsets) > 0 && o.Mode != spec.OffsetsSpecific {
		el.add(path+".offsets", "are only used with mode specific")
	}
	if o.Mode == spec.OffsetsSpecific && len(o.Offsets) == 0 {
		el.add(path+".offsets", "mode specific needs at least one offset")
	}
	type tp struct {
		t string
		p int32
	}
	seen := map[tp]bool{}
	for i, x := range o.Offsets {
		xp := fmt.Sprintf("%s.offsets[%d]", path, i)
		if x.Topic == "" {
			el.add(xp+".topic", "is required")
		}
		if x.Partition < 0 {
			el.add(xp+".partition", "must not be negative")
		}
		if x.Offset < 0 {
			el.add(xp+".offset", "must not be negative")
		}
		if seen[tp{x.Topic, x.Partition}] {
			el.add(xp, "topic %q partition %d is listed twice", x.Topic, x.Partition)
		}
		seen[tp{x.Topic, x.Partition}] = true
	}
	switch o.CommittedReset {
	case "", "earliest", "latest", "none":
	default:
		el.add(path+".committedReset", "must be earliest, latest or none, not %q", o.CommittedReset)
	}
	if o.CommittedReset != "" && o.Mode != spec.OffsetsCommitted {
		el.add(path+".committedReset", "is only used with mode committed")
	}
}

func checkKafkaSource(path string, k *spec.KafkaSource, el *errList) {
	checkBootstrap(path+".bootstrapServers", k.BootstrapServers, el)
	switch {
	case len(k.Topics) > 0 && k.TopicPattern != "":
		el.add(path, "set exactly one of topics, topicPattern, not both")
	case len(k.Topics) == 0 && k.TopicPattern == "":
		el.add(path, "set exactly one of topics, topicPattern")
	}
	for i, t := range k.Topics {
		if t == "" {
			el.add(fmt.Sprintf("%s.topics[%d]", path, i), "is empty")
		}
	}
	if k.TopicPattern != "" {
		if _, err := regexp.Compile(k.TopicPattern); err != nil {
			el.add(path+".topicPattern", "is not a regular expression: %v", err)
		}
	}
	checkKafkaFormat(path+".format", k.Format, el)
	checkKafkaFormat(path+".keyFormat", k.KeyFormat, el)
	checkKafkaOffsets(path+".startingOffsets", k.StartingOffsets, false, k.GroupID, el)
	checkKafkaOffsets(path+".stoppingOffsets", k.StoppingOffsets, true, k.GroupID, el)
	checkKafkaProperties(path+".properties", k.Properties, KafkaSourceProperties, el)
	checkKafkaSecurity(path+".security", k.Security, el)
}

// KafkaSinkExprs are the compiled expressions of a Kafka sink.
type KafkaSinkExprs struct {
	Topic, Key, Value *expr.Program
	Headers           map[string]*expr.Program
}

// CompileKafkaSink checks a Kafka sink and compiles its expressions; path
// is the sink's field path (spec.steps[i].sink.kafka). The connector calls
// it too, so the planner and the writer agree on what the fields mean.
func CompileKafkaSink(path, step string, k *spec.KafkaSink) (*KafkaSinkExprs, error) {
	var el errList
	x := checkKafkaSink(path, step, k, &el)
	return x, el.err()
}

func checkKafkaSink(path, step string, k *spec.KafkaSink, el *errList) *KafkaSinkExprs {
	x := &KafkaSinkExprs{}
	c := func(p, src string) *expr.Program {
		if strings.TrimSpace(src) == "" {
			el.add(p, "is empty: write a CEL expression or leave the field out")
			return nil
		}
		prog, err := expr.Compile(src, expr.Any, expr.Record)
		if err != nil {
			el.add(p, "step %q: %v", step, err)
		}
		return prog
	}
	checkBootstrap(path+".bootstrapServers", k.BootstrapServers, el)
	switch {
	case k.Topic != "" && k.TopicExpression != "":
		el.add(path, "set exactly one of topic, topicExpression, not both")
	case k.Topic == "" && k.TopicExpression == "":
		el.add(path, "set exactly one of topic, topicExpression")
	case k.TopicExpression != "":
		x.Topic = c(path+".topicExpression", k.TopicExpression)
	}
	if k.Key != "" {
		x.Key = c(path+".key", k.Key)
	}
	if k.Value != "" {
		x.Value = c(path+".value", k.Value)
	}
	if len(k.Headers) > 0 {
		names := make([]string, 0, len(k.Headers))
		for h := range k.Headers {
			names = append(names, h)
		}
		sort.Strings(names)
		x.Headers = map[string]*expr.Program{}
		for _, h := range names {
			hp := fmt.Sprintf("%s.headers[%q]", path, h)
			if h == "" {
				el.add(hp, "a header needs a name")
				continue
			}
			x.Headers[h] = c(hp, k.Headers[h])
		}
	}
	checkKafkaFormat(path+".format", k.Format, el)
	checkKafkaFormat(path+".keyFormat", k.KeyFormat, el)
	switch k.DeliveryGuarantee {
	case "", spec.DeliveryNone, spec.DeliveryAtLeastOnce:
		if k.TransactionalIDPrefix != "" {
			el.add(path+".transactionalIdPrefix", "is only used with deliveryGuarantee exactly-once")
		}
	case spec.DeliveryExactlyOnce:
		if k.TransactionalIDPrefix == "" {
			el.add(path+".transactionalIdPrefix", "is required with deliveryGuarantee exactly-once: a name unique to this job and sink, stable across restarts")
		}
		if a, ok := k.Properties["acks"]; ok && a != "all" && a != "-1" {
			// Transactions need the idempotent producer, which needs acks=all.
			el.add(fmt.Sprintf("%s.properties[%q]", path, "acks"), "must be all with deliveryGuarantee exactly-once (Kafka transactions need it), not %q", a)
		}
	default:
		el.add(path+".deliveryGuarantee", "must be none, at-least-once or exactly-once, not %q", k.DeliveryGuarantee)
	}
	if k.TransactionTimeout != "" {
		if d, err := k.TransactionTimeout.Get(); err != nil || d < 1e9 {
			el.add(path+".transactionTimeout", "must be a duration of at least 1s, not %q", k.TransactionTimeout)
		}
	}
	checkKafkaProperties(path+".properties", k.Properties, KafkaSinkProperties, el)
	checkKafkaSecurity(path+".security", k.Security, el)
	return x
}
