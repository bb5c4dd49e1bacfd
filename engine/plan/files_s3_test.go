package plan

import (
	"reflect"
	"testing"

	"github.com/flinkjob/flinkjob/engine/spec"
)

// A files source's or sink's own s3 block (issue #9, credentials from
// Secret references): every problem is reported with its field path.
func TestFileS3Validation(t *testing.T) {
	src := func(s3 string) string {
		return "  - name: src\n    source: {files: {path: 's3://in/x/', s3: {" + s3 + "}}}\n"
	}
	out := func(p, s3 string) string {
		return "  - name: out\n    sink: {files: {path: '" + p + "', s3: {" + s3 + "}}}\n"
	}
	const keys = "accessKeySecretRef: {name: s3-creds, key: access}, secretKeySecretRef: {name: s3-creds, key: secret}"
	const print = "  - name: out\n    sink: {print: {}}\n"
	const elems = "  - name: src\n    source: {elements: [1]}\n"
	for _, c := range []struct {
		name, yaml, path, msg string
	}{
		{"access key without secret key", steps(src("accessKeySecretRef: {name: c, key: a}"), print),
			"spec.steps[0].source.files.s3.secretKeySecretRef", "is required with accessKeySecretRef"},
		{"secret key without access key", steps(elems, out("s3://o/", "secretKeySecretRef: {name: c, key: s}")),
			"spec.steps[1].sink.files.s3.accessKeySecretRef", "is required with secretKeySecretRef"},
		{"endpoint with a path", steps(src("endpoint: 'https://minio:9000/bucket', "+keys), print),
			"spec.steps[0].source.files.s3.endpoint", "is not host[:port]"},
		{"endpoint with another scheme", steps(elems, out("s3://o/", "endpoint: 'ftp://minio:9000'")),
			"spec.steps[1].sink.files.s3.endpoint", `scheme must be http or https, not "ftp"`},
		{"endpoint with an empty port", steps(src("endpoint: 'minio:'"), print),
			"spec.steps[0].source.files.s3.endpoint", "is not host[:port]"},
		{"endpoint without host", steps(src("endpoint: 'http://'"), print),
			"spec.steps[0].source.files.s3.endpoint", "is not host[:port]"},
		{"s3 block on a local path", steps(elems, out("/tmp/out", "endpoint: 'minio:9000'")),
			"spec.steps[1].sink.files.s3", `applies to s3:// paths only, not "/tmp/out"`},
		{"secret ref without key", steps(src("accessKeySecretRef: {name: c}, secretKeySecretRef: {name: c, key: s}"), print),
			"spec.steps[0].source.files.s3.accessKeySecretRef.key", "is required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantErrorAt(t, Validate(parseJob(t, c.yaml), Options{}), c.path, c.msg, true)
		})
	}

	for name, y := range map[string]string{
		"keys and https endpoint": steps(src("endpoint: 'https://other.example.com', region: eu-west-1, "+keys), print),
		"http endpoint with port": steps(src("endpoint: 'http://10.0.0.7:9000/', insecureSkipVerify: true, "+keys), print),
		"anonymous, job endpoint": steps(src(""), print),
		"sink on s3a":             steps(elems, out("s3a://o/p", "endpoint: 'minio.ns.svc:9000', "+keys)),
	} {
		t.Run("valid "+name, func(t *testing.T) {
			if err := Validate(parseJob(t, y), Options{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The operator injects exactly Job.SecretRefs() into worker pods, so the
// files keys reach the workers only if they are listed there.
func TestSecretRefsIncludeFileS3(t *testing.T) {
	job := parseJob(t, steps(
		"  - name: src\n    source: {files: {path: 's3://in/', s3: {accessKeySecretRef: {name: in-creds, key: access}, secretKeySecretRef: {name: in-creds, key: secret}}}}\n",
		"  - name: k\n    inputs: [src]\n    sink: {kafka: {bootstrapServers: ['k:9092'], topic: o, security: {sasl: {mechanism: PLAIN, username: u, passwordSecretRef: {name: in-creds, key: secret}}}}}\n",
		"  - name: out\n    inputs: [src]\n    sink: {files: {path: 's3://out/', s3: {endpoint: 'other:9000', accessKeySecretRef: {name: out-creds, key: id}, secretKeySecretRef: {name: out-creds, key: key}}}}\n",
		"  - name: plain\n    inputs: [src]\n    sink: {files: {path: 's3://out2/'}}\n"))
	want := []spec.SecretRef{{Name: "in-creds", Key: "access"}, {Name: "in-creds", Key: "secret"}, {Name: "out-creds", Key: "id"}, {Name: "out-creds", Key: "key"}}
	if got := job.SecretRefs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("SecretRefs = %v, want %v (files keys in step order, the key shared with kafka once)", got, want)
	}
	if err := Validate(job, Options{}); err != nil {
		t.Fatal(err)
	}
}
