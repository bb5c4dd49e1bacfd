package connector

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Hooks for the external tests of this package (package connector_test),
// which run jobs through engine/local and so cannot be in this package.

// S3ForTest is the test MinIO's config (started on first use).
func S3ForTest(t *testing.T) S3Config { return testS3(t) }

// BucketForTest creates a bucket removed when the test ends.
func BucketForTest(t *testing.T, cfg S3Config) string { return testBucket(t, cfg) }

// KafkaForTest starts an in-process Kafka cluster (kfake) with the topics,
// each with partitions partitions, and returns its address.
func KafkaForTest(t *testing.T, partitions int32, topics ...string) string {
	_, addrs := newKafka(t, partitions, topics...)
	return addrs[0]
}

// ProduceForTest writes records synchronously, each to the partition it names.
func ProduceForTest(t *testing.T, addr string, recs []*kgo.Record) {
	kafkaProduce(t, []string{addr}, recs...)
}
