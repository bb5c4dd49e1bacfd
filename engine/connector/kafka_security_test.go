package connector

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// kafkaRoundTrip writes three records through a sink and reads them back
// through a source, both with the given security settings.
func kafkaRoundTrip(t *testing.T, addrs []string, sec *spec.KafkaSecurity) error {
	t.Helper()
	s, err := NewKafkaSink(spec.KafkaSink{BootstrapServers: addrs, Topic: "t", Format: spec.KafkaString, Value: "record",
		Security: sec, Properties: map[string]string{"request.timeout.ms": "5000"}})
	if err != nil {
		return err
	}
	w, err := s.Open(context.Background(), 0, 1)
	if err != nil {
		return err
	}
	for _, v := range []string{"a", "b", "c"} {
		if err := w.Write(&value.Record{Value: v, Ts: value.NoTimestamp}); err != nil {
			w.Abort()
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := w.(Transactional).PreCommit(ctx, 1); err != nil {
		w.Abort()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	src := &KafkaSource{Spec: spec.KafkaSource{BootstrapServers: addrs, Topics: []string{"t"}, Security: sec,
		StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}}
	rd, err := src.Open(ctx, 0, 1)
	if err != nil {
		return err
	}
	defer rd.Close()
	if got := kafkaValues(readKafka(t, rd, 0)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("read back %v", got)
	}
	return nil
}

func TestKafkaSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"), kfake.EnableSASL(), kfake.Superuser(mech, "flink", "s3cret"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			pass := spec.SecretRef{Name: "kafka-creds", Key: "password"}
			sec := &spec.KafkaSecurity{SASL: &spec.KafkaSASL{Mechanism: mech, UsernameSecretRef: &spec.SecretRef{Name: "kafka-creds", Key: "user"}, PasswordSecretRef: &pass}}
			// The secret comes from the variable the operator sets.
			t.Setenv("FLINKJOB_SECRET_KAFKA_CREDS_USER", "flink")
			t.Setenv(spec.SecretEnvName(pass), "s3cret")
			if err := kafkaRoundTrip(t, c.ListenAddrs(), sec); err != nil {
				t.Fatal(err)
			}
			t.Setenv(spec.SecretEnvName(pass), "wrong")
			src := &KafkaSource{Spec: spec.KafkaSource{BootstrapServers: c.ListenAddrs(), Topics: []string{"t"}, Security: sec}}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			// (kfake drops the connection; Kafka answers SASL_AUTHENTICATION_FAILED.)
			if rd, err := src.Open(ctx, 0, 1); err == nil {
				rd.Close()
				t.Fatal("wrong password: Open succeeded")
			}
		})
	}
	// A secret that is not in the environment is named in the error.
	sec := &spec.KafkaSecurity{SASL: &spec.KafkaSASL{Mechanism: "PLAIN", Username: "u", PasswordSecretRef: &spec.SecretRef{Name: "nope", Key: "pw"}}}
	_, err := (&KafkaSource{Spec: spec.KafkaSource{BootstrapServers: []string{"127.0.0.1:1"}, Topics: []string{"t"}, Security: sec}}).Open(context.Background(), 0, 1)
	if err == nil || !strings.Contains(err.Error(), "FLINKJOB_SECRET_NOPE_PW is not set") || !strings.Contains(err.Error(), "passwordSecretRef") {
		t.Fatalf("missing secret: error %v", err)
	}
}

// kafkaSelfSigned makes a CA-less self-signed certificate for 127.0.0.1.
func kafkaSelfSigned(t *testing.T) (tls.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kfake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return pair, certPEM, keyPEM
}

func TestKafkaTLS(t *testing.T) {
	pair, certPEM, keyPEM := kafkaSelfSigned(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(certPEM))
	// The broker requires a client certificate signed by the same
	// (self-signed) authority: mutual TLS.
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ca := spec.SecretRef{Name: "kafka-tls", Key: "ca.crt"}
	crt := spec.SecretRef{Name: "kafka-tls", Key: "tls.crt"}
	key := spec.SecretRef{Name: "kafka-tls", Key: "tls.key"}
	t.Setenv(spec.SecretEnvName(ca), certPEM)
	t.Setenv(spec.SecretEnvName(crt), certPEM)
	t.Setenv(spec.SecretEnvName(key), keyPEM)
	sec := &spec.KafkaSecurity{TLS: &spec.KafkaTLS{CASecretRef: &ca, CertSecretRef: &crt, KeySecretRef: &key}}
	if err := kafkaRoundTrip(t, c.ListenAddrs(), sec); err != nil {
		t.Fatal(err)
	}
	// Without the CA the broker's certificate is not trusted.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	bad := &spec.KafkaSecurity{TLS: &spec.KafkaTLS{CertSecretRef: &crt, KeySecretRef: &key}}
	if rd, err := (&KafkaSource{Spec: spec.KafkaSource{BootstrapServers: c.ListenAddrs(), Topics: []string{"t"}, Security: bad}}).Open(ctx, 0, 1); err == nil {
		rd.Close()
		t.Fatal("untrusted broker certificate: Open succeeded")
	}
}
