package plan

import (
	"fmt"

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
