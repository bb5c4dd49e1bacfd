package connector

import "testing"

// Hooks for the external tests of this package (package connector_test),
// which run jobs through engine/local and so cannot be in this package.

// S3ForTest is the test MinIO's config (started on first use).
func S3ForTest(t *testing.T) S3Config { return testS3(t) }

// BucketForTest creates a bucket removed when the test ends.
func BucketForTest(t *testing.T, cfg S3Config) string { return testBucket(t, cfg) }
