package plan

import (
	"testing"
)

// Files source and sink fields (issue #9): every problem is reported with
// its field path.
func TestFileFieldValidation(t *testing.T) {
	const src = "  - name: src\n    source: {elements: [1]}\n"
	const out = "  - name: out\n    sink: {print: {}}\n"
	for _, c := range []struct {
		name, yaml, path, msg string
	}{
		{"parquet sink without schema", steps(src, "  - name: out\n    sink: {files: {path: o/, format: parquet}}\n"),
			"spec.steps[1].sink.files.schema", "a parquet sink needs a schema"},
		{"unknown field type", steps(src, "  - name: out\n    sink: {files: {path: o/, format: parquet, schema: [{name: a, type: decimal}]}}\n"),
			"spec.steps[1].sink.files.schema[0].type", `must be string, int, double, bool, timestamp or bytes, not "decimal"`},
		{"missing field type", steps("  - name: src\n    source: {files: {path: x, format: jsonl, schema: [{name: a}]}}\n", out),
			"spec.steps[0].source.files.schema[0].type", "is required"},
		{"field declared twice", steps("  - name: src\n    source: {files: {path: x, format: csv, schema: [{name: a, type: int}, {name: a, type: string}]}}\n", out),
			"spec.steps[0].source.files.schema[1].name", `field "a" is declared twice`},
		{"field without name", steps(src, "  - name: out\n    sink: {files: {path: o/, schema: [{type: int}]}}\n"),
			"spec.steps[1].sink.files.schema[0].name", "is required"},
		{"negative part size", steps(src, "  - name: out\n    sink: {files: {path: o/, rollingPolicy: {maxPartSize: -5}}}\n"),
			"spec.steps[1].sink.files.rollingPolicy.maxPartSize", "must be a positive number of bytes"},
		{"bad rollover interval", steps(src, "  - name: out\n    sink: {files: {path: o/, rollingPolicy: {rolloverInterval: soon}}}\n"),
			"spec.steps[1].sink.files.rollingPolicy.rolloverInterval", `"soon" is not a duration`},
		{"zero monitor interval", steps("  - name: src\n    source: {files: {path: x, monitorInterval: 0s}}\n", out),
			"spec.steps[0].source.files.monitorInterval", "must be positive"},
		{"schema on a parquet source", steps("  - name: src\n    source: {files: {path: x, format: parquet, schema: [{name: a, type: int}]}}\n", out),
			"spec.steps[0].source.files.schema", "reads the schema stored in each file"},
		{"schema on a text source", steps("  - name: src\n    source: {files: {path: x, schema: [{name: a, type: int}]}}\n", out),
			"spec.steps[0].source.files.schema", "format text takes no schema"},
		{"monitored source in BATCH", "runtimeMode: BATCH\n" + steps("  - name: src\n    source: {files: {path: x, monitorInterval: 1s}}\n", out),
			"spec.steps[0].source", "unbounded (files with monitorInterval)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantErrorAt(t, Validate(parseJob(t, c.yaml), Options{}), c.path, c.msg, false)
		})
	}

	// The valid forms: a monitored source is unbounded (AUTOMATIC resolves
	// to STREAMING), a parquet sink with a schema and a csv sink whose
	// columns come from the schema.
	job := parseJob(t, steps(
		"  - name: src\n    source: {files: {path: x, format: csv, csv: {header: true}, monitorInterval: 2s, schema: [{name: a, type: int}, {name: t, type: timestamp, nullable: true}]}}\n",
		"  - name: out\n    sink: {files: {path: o/, format: parquet, schema: [{name: a, type: int}], rollingPolicy: {maxPartSize: 1048576, rolloverInterval: 1m}}}\n",
		"  - name: out2\n    inputs: [src]\n    sink: {files: {path: o2/, format: csv, schema: [{name: a, type: int}]}}\n"))
	if err := Validate(job, Options{}); err != nil {
		t.Fatal(err)
	}
	if m := ResolveMode(job, ""); m != "STREAMING" {
		t.Errorf("AUTOMATIC with a monitored files source resolves to %s, want STREAMING", m)
	}
}
