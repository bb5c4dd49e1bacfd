package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/internal/testminio"
)

// A local run reads the job's spec.storage.s3 as the operator does for its
// pods when FLINKJOB_S3_ENDPOINT is unset: a bare host is HTTPS, a scheme
// says itself, and --processes hands the same to every worker.
func TestLocalS3FromStorage(t *testing.T) {
	t.Setenv("FLINKJOB_S3_ENDPOINT", "")
	t.Setenv("FLINKJOB_S3_SECURE", "")
	t.Setenv("FLINKJOB_S3_REGION", "")
	job := func(endpoint, region string, skip bool) *Manifest {
		m := &Manifest{}
		m.Spec.Storage = &v1alpha1.Storage{S3: &v1alpha1.S3Storage{Bucket: "b", Endpoint: endpoint, Region: region}}
		if skip {
			m.Spec.Storage.S3.TLS = &v1alpha1.S3TLS{InsecureSkipVerify: true}
		}
		return m
	}
	cfg, env := localS3(job("minio.example:9000", "eu-1", true))
	if !cfg.Secure || cfg.Endpoint != "minio.example:9000" || cfg.Region != "eu-1" || !cfg.InsecureSkipVerify {
		t.Errorf("bare host: %+v, want HTTPS to minio.example:9000 in eu-1, skipping verification", cfg)
	}
	for _, want := range []string{"FLINKJOB_S3_ENDPOINT=minio.example:9000", "FLINKJOB_S3_SECURE=true", "FLINKJOB_S3_REGION=eu-1", "FLINKJOB_S3_INSECURE_SKIP_VERIFY=true"} {
		if !slices.Contains(env, want) {
			t.Errorf("bare host: worker env %q lacks %s", env, want)
		}
	}
	if cfg, env := localS3(job("http://minio:9000", "", false)); cfg.Secure || cfg.Endpoint != "http://minio:9000" || !slices.Equal(env, []string{"FLINKJOB_S3_ENDPOINT=http://minio:9000"}) {
		t.Errorf("http:// endpoint: %+v, worker env %q; want the scheme to decide", cfg, env)
	}
	t.Setenv("FLINKJOB_S3_ENDPOINT", "127.0.0.1:9999")
	if cfg, env := localS3(job("minio.example:9000", "", false)); cfg.Endpoint != "127.0.0.1:9999" || env != nil {
		t.Errorf("with FLINKJOB_S3_ENDPOINT set: %+v, worker env %q; want the environment's endpoint and nothing added", cfg, env)
	}
}

// `flinkjob run --processes` of a job whose only S3 setting is its
// spec.storage endpoint (the credentials in the environment): every worker
// process reaches the bucket. Before, the workers read the environment
// only and failed with "no S3 endpoint configured".
func TestProcessesUseStorageEndpoint(t *testing.T) {
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	bin := buildCLI(t)
	job := filepath.Join(t.TempDir(), "job.yaml")
	os.WriteFile(job, []byte(`apiVersion: flinkjob.io/v1alpha1
kind: FlinkJob
metadata: {name: storage-endpoint}
spec:
  runtimeMode: BATCH
  parallelism: 2
  storage: {s3: {bucket: `+bucket+`, endpoint: "http://`+s3.Endpoint+`"}}
  steps:
    - name: nums
      source: {elements: [1, 2, 3, 4]}
    - name: by-parity
      keyBy: "record % 2"
      reduce: "acc + record"
    - name: out
      sink: {files: {path: "s3://`+bucket+`/out/", format: jsonl}}
`), 0o644)
	cmd := exec.Command(bin, "run", "--processes", "--quiet", "--shuffle", "s3://"+bucket+"/shuffle/", "-f", job)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLINKJOB_S3_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "FLINKJOB_S3_ACCESS_KEY="+s3.AccessKey, "FLINKJOB_S3_SECRET_KEY="+s3.SecretKey)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("flinkjob run --processes: %v\n%s", err, out)
	}
	loc, err := connector.ParseLocation("s3://"+bucket+"/out/", s3)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	files, err := loc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range files {
		r, err := loc.Open(ctx, f.Name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Fields(string(b))...)
	}
	slices.Sort(lines)
	if !slices.Equal(lines, []string{"4", "6"}) {
		t.Errorf("output %q, want the sums by parity 4 and 6", lines)
	}
}
