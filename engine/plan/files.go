package plan

import (
	"fmt"
	"strings"

	"github.com/flinkjob/flinkjob/engine/spec"
)

// Validation of the files source and sink: formats, declared schemas,
// continuous monitoring and the sink's rolling policy (issue #9). The
// connector checks the same things when it is built; here every problem
// gets its field path, for the CLI, the webhook and the controller alike.

// checkFileSource checks spec.steps[i].source.files (at path).
func checkFileSource(path string, f *spec.FileSource, el *errList) {
	if f.Path == "" {
		el.add(path+".path", "is required")
	}
	checkFileFormat(path, f.Format, f.CSV, el)
	checkSchema(path+".schema", f.Schema, el)
	if len(f.Schema) > 0 {
		switch f.Format {
		case "", spec.FormatText:
			el.add(path+".schema", "format text takes no schema (its records are {\"line\": ...}); use jsonl or csv")
		case spec.FormatParquet:
			el.add(path+".schema", "a parquet source reads the schema stored in each file; remove schema")
		}
	}
	if f.MonitorInterval != "" {
		checkPositiveDuration(path+".monitorInterval", f.MonitorInterval, el)
	}
	checkFileS3(path, f.Path, f.S3, el)
}

// checkFileSink checks spec.steps[i].sink.files (at path).
func checkFileSink(path string, f *spec.FileSink, el *errList) {
	if f.Path == "" {
		el.add(path+".path", "is required")
	}
	checkFileFormat(path, f.Format, f.CSV, el)
	checkSchema(path+".schema", f.Schema, el)
	switch f.Format {
	case spec.FormatCSV:
		if (f.CSV == nil || len(f.CSV.Columns) == 0) && len(f.Schema) == 0 {
			el.add(path+".csv.columns", "a csv sink needs the columns to write, in order (csv.columns, or a schema)")
		}
	case spec.FormatParquet:
		if len(f.Schema) == 0 {
			el.add(path+".schema", "a parquet sink needs a schema: the files' columns (name, type, nullable)")
		}
	case spec.FormatText:
		if len(f.Schema) > 0 {
			el.add(path+".schema", "format text takes no schema (it writes one line per record); use jsonl, csv or parquet")
		}
	}
	if rp := f.RollingPolicy; rp != nil {
		if rp.MaxPartSize < 0 {
			el.add(path+".rollingPolicy.maxPartSize", "must be a positive number of bytes (absent means 128 MiB), not %d", rp.MaxPartSize)
		}
		if rp.RolloverInterval != "" {
			checkPositiveDuration(path+".rollingPolicy.rolloverInterval", rp.RolloverInterval, el)
		}
	}
	checkFileS3(path, f.Path, f.S3, el)
}

// checkFileS3 checks a files source's or sink's own s3 block (at
// path+".s3"): it only makes sense for an s3:// path, the endpoint must be
// one the connector can dial, and an access key without its secret key (or
// the reverse) would fail only when a worker starts.
func checkFileS3(path, p string, s *spec.FileS3, el *errList) {
	if s == nil {
		return
	}
	path += ".s3"
	if scheme, _, _ := strings.Cut(p, "://"); p != "" && !strings.EqualFold(scheme, "s3") && !strings.EqualFold(scheme, "s3a") {
		el.add(path, "applies to s3:// paths only, not %q", p)
	}
	if s.Endpoint != "" {
		if _, _, err := spec.ParseS3Endpoint(s.Endpoint); err != nil {
			el.add(path+".endpoint", "%v", err)
		}
	}
	switch {
	case s.AccessKeySecretRef != nil && s.SecretKeySecretRef == nil:
		el.add(path+".secretKeySecretRef", "is required with accessKeySecretRef (set both, or neither for anonymous access)")
	case s.AccessKeySecretRef == nil && s.SecretKeySecretRef != nil:
		el.add(path+".accessKeySecretRef", "is required with secretKeySecretRef (set both, or neither for anonymous access)")
	}
	checkSecretRef(path+".accessKeySecretRef", s.AccessKeySecretRef, el)
	checkSecretRef(path+".secretKeySecretRef", s.SecretKeySecretRef, el)
}

func checkFileFormat(path string, f spec.Format, csv *spec.CSVOptions, el *errList) {
	switch f {
	case "", spec.FormatText, spec.FormatJSONL, spec.FormatCSV, spec.FormatParquet:
	default:
		el.add(path+".format", "must be text, jsonl, csv or parquet, not %q", f)
	}
	if csv != nil && len([]rune(csv.Delimiter)) > 1 {
		el.add(path+".csv.delimiter", "must be a single character, not %q", csv.Delimiter)
	}
}

func checkSchema(path string, fields []spec.SchemaField, el *errList) {
	seen := map[string]bool{}
	for i, f := range fields {
		fp := fmt.Sprintf("%s[%d]", path, i)
		if f.Name == "" {
			el.add(fp+".name", "is required")
		} else if seen[f.Name] {
			el.add(fp+".name", "field %q is declared twice", f.Name)
		}
		seen[f.Name] = true
		switch f.Type {
		case spec.TypeString, spec.TypeInt, spec.TypeDouble, spec.TypeBool, spec.TypeTimestamp, spec.TypeBytes:
		case "":
			el.add(fp+".type", "is required (string, int, double, bool, timestamp or bytes)")
		default:
			el.add(fp+".type", "must be string, int, double, bool, timestamp or bytes, not %q", f.Type)
		}
	}
}

func checkPositiveDuration(path string, d spec.Duration, el *errList) {
	v, err := d.Get()
	if err != nil {
		el.add(path, "%q is not a duration (use e.g. 500ms, 5s, 1m)", d)
	} else if v <= 0 {
		el.add(path, "must be positive, not %q", d)
	}
}
