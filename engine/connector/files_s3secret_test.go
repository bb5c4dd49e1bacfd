package connector

import (
	"reflect"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/spec"
)

// A files source and sink with their own s3 block read and write with the
// keys from the Secret environment variables (FLINKJOB_SECRET_*, which the
// operator sets on workers), not with the job's storage settings: here the
// job's default S3Config has wrong keys (and, for the endpoint case, a
// wrong endpoint), so only the per-connector settings can succeed.
func TestFileS3KeysFromSecretEnv(t *testing.T) {
	real := testS3(t)
	bucket := testBucket(t, real)
	putObject(t, mustLocation(t, "s3://"+bucket+"/in/", real), "a.jsonl", "{\"n\":1}\n{\"n\":2}\n")
	putObject(t, mustLocation(t, "s3://"+bucket+"/in/", real), "b.jsonl", "{\"n\":3}\n")

	access := spec.SecretRef{Name: "other-store", Key: "access-key"}
	secret := spec.SecretRef{Name: "other-store", Key: "secret-key"}
	t.Setenv(spec.SecretEnvName(access), real.AccessKey)
	t.Setenv(spec.SecretEnvName(secret), real.SecretKey)
	wrongKeys := S3Config{Endpoint: real.Endpoint, AccessKey: "not-the-user", SecretKey: "not-the-password"}
	wrongAll := S3Config{Endpoint: "127.0.0.1:1", AccessKey: "not-the-user", SecretKey: "not-the-password"}
	in := "s3://" + bucket + "/in/"
	want := jsonStrings(map[string]any{"n": int64(1)}, map[string]any{"n": int64(2)}, map[string]any{"n": int64(3)})

	// The default config alone is refused, so a pass below is the s3 block's doing.
	if _, err := readSubtasks(t, mustSource(t, spec.FileSource{Path: in, Format: spec.FormatJSONL}, wrongKeys), 1); err == nil {
		t.Fatal("reading with the wrong default keys succeeded; the test proves nothing")
	}

	keysOnly := &spec.FileS3{AccessKeySecretRef: &access, SecretKeySecretRef: &secret}
	withEndpoint := &spec.FileS3{Endpoint: "http://" + real.Endpoint, AccessKeySecretRef: &access, SecretKeySecretRef: &secret}
	for name, c := range map[string]struct {
		def S3Config
		s3  *spec.FileS3
	}{
		"keys, job endpoint": {wrongKeys, keysOnly},
		"own endpoint":       {wrongAll, withEndpoint},
	} {
		t.Run(name, func(t *testing.T) {
			got := readAll(t, mustSource(t, spec.FileSource{Path: in, Format: spec.FormatJSONL, S3: c.s3}, c.def), 2)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("read %q, want %q", got, want)
			}
			out := "s3://" + bucket + "/out-" + strings.ReplaceAll(name, " ", "-") + "/"
			writeAll(t, mustSink(t, spec.FileSink{Path: out, Format: spec.FormatJSONL, S3: c.s3}, c.def), 2, []any{map[string]any{"n": int64(7)}})
			back := readAll(t, mustSource(t, spec.FileSource{Path: out, Format: spec.FormatJSONL}, real), 1)
			if !reflect.DeepEqual(back, jsonStrings(map[string]any{"n": int64(7)})) {
				t.Fatalf("sink wrote %q", back)
			}
		})
	}

	// Anonymous (no keys) must not fall back to the job's keys: the
	// private bucket refuses it even though the default keys would work.
	if _, err := readSubtasks(t, mustSource(t, spec.FileSource{Path: in, Format: spec.FormatJSONL, S3: &spec.FileS3{}}, real), 1); err == nil {
		t.Error("an s3 block without keys read a private bucket: the job's keys leaked into it")
	}

	// A variable that is not set is named in the error.
	missing := spec.SecretRef{Name: "absent", Key: "k"}
	_, err := NewFileSource(spec.FileSource{Path: in, S3: &spec.FileS3{AccessKeySecretRef: &missing, SecretKeySecretRef: &secret}}, real)
	if err == nil || !strings.Contains(err.Error(), "s3.accessKeySecretRef") || !strings.Contains(err.Error(), "FLINKJOB_SECRET_ABSENT_K") {
		t.Fatalf("err = %v, want s3.accessKeySecretRef and the variable's name", err)
	}
	if _, err := NewFileSink(spec.FileSink{Path: in, S3: &spec.FileS3{Endpoint: "ftp://x"}}, real); err == nil || !strings.Contains(err.Error(), "s3.endpoint") {
		t.Fatalf("err = %v, want s3.endpoint", err)
	}
}
