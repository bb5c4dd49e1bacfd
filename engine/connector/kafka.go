package connector

// Kafka connectors (github.com/twmb/franz-go), as Flink's KafkaSource and
// KafkaSink:
//
//   - the source (kafka_source.go) splits the partitions of its topics over
//     the parallel subtasks, tracks event time per partition, stores its
//     offsets in checkpoints and commits them to the consumer group when a
//     checkpoint completes; it is bounded when stoppingOffsets is set;
//   - the sink (kafka_sink.go) writes with none, at-least-once or
//     exactly-once delivery (Kafka transactions committed when a checkpoint
//     completes).
//
// This file holds what both share: client options (brokers, TLS, SASL with
// secrets from Secret references) and the Timestamped value readers emit.

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/flinkjob/flinkjob/engine/spec"
)

// Timestamped is what a reader whose records carry their own event time
// emits instead of the bare value (a Kafka record's timestamp). The source
// operator unwraps it: Value becomes the record, Ts its event time (unless
// source.timestamp computes another), and, with a watermark strategy,
// Watermark is the reader's watermark after this record, which the reader
// tracks per split (Kafka partition) as Flink's per-split watermarks do: the
// minimum over its splits that are not idle. A reader may reuse one
// Timestamped for every value: the operator reads it before emit returns.
type Timestamped struct {
	Value     any
	Ts        int64
	Watermark int64
}

// LookupSecret reads the value of a Secret reference from the environment
// variable spec.SecretEnvName names (set by the operator from the Secret, or
// by the user when running locally). A variable for tests.
var LookupSecret = func(r spec.SecretRef) (string, error) {
	name := spec.SecretEnvName(r)
	v, ok := os.LookupEnv(name)
	if !ok {
		return "", fmt.Errorf("secret %s key %s: environment variable %s is not set (the operator sets it on workers from the Secret; export it when running locally)", r.Name, r.Key, name)
	}
	return v, nil
}

// kafkaClientOpts are the options every Kafka client of a connector uses:
// brokers, TLS and SASL.
func kafkaClientOpts(servers []string, sec *spec.KafkaSecurity, clientID string) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(servers...)}
	if clientID != "" {
		opts = append(opts, kgo.ClientID(clientID))
	} else {
		opts = append(opts, kgo.ClientID("flinkjob"))
	}
	if sec == nil {
		return opts, nil
	}
	if t := sec.TLS; t != nil {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, for tests
		if t.CASecretRef != nil {
			pem, err := LookupSecret(*t.CASecretRef)
			if err != nil {
				return nil, fmt.Errorf("security.tls.caSecretRef: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(pem)) {
				return nil, fmt.Errorf("security.tls.caSecretRef: secret %s key %s holds no PEM certificate", t.CASecretRef.Name, t.CASecretRef.Key)
			}
			cfg.RootCAs = pool
		}
		if t.CertSecretRef != nil && t.KeySecretRef != nil {
			cert, err := LookupSecret(*t.CertSecretRef)
			if err != nil {
				return nil, fmt.Errorf("security.tls.certSecretRef: %w", err)
			}
			key, err := LookupSecret(*t.KeySecretRef)
			if err != nil {
				return nil, fmt.Errorf("security.tls.keySecretRef: %w", err)
			}
			pair, err := tls.X509KeyPair([]byte(cert), []byte(key))
			if err != nil {
				return nil, fmt.Errorf("security.tls: client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if a := sec.SASL; a != nil {
		user := a.Username
		if a.UsernameSecretRef != nil {
			u, err := LookupSecret(*a.UsernameSecretRef)
			if err != nil {
				return nil, fmt.Errorf("security.sasl.usernameSecretRef: %w", err)
			}
			user = u
		}
		if a.PasswordSecretRef == nil {
			return nil, fmt.Errorf("security.sasl.passwordSecretRef is required")
		}
		pass, err := LookupSecret(*a.PasswordSecretRef)
		if err != nil {
			return nil, fmt.Errorf("security.sasl.passwordSecretRef: %w", err)
		}
		switch a.Mechanism {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("security.sasl.mechanism %q is not supported", a.Mechanism)
		}
	}
	return opts, nil
}

// propInt reads an integer property validated by the planner.
func propInt(props map[string]string, name string) (int, bool) {
	v, ok := props[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

func propMillis(props map[string]string, name string) (time.Duration, bool) {
	n, ok := propInt(props, name)
	return time.Duration(n) * time.Millisecond, ok
}
