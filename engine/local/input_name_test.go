package local_test

import (
	"reflect"
	"testing"

	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// A process step sees each record's input as it is named in `inputs`: the
// keyBy or partitioning step read, not the producer behind it.
func TestProcessInputIsTheListedName(t *testing.T) {
	job := enginetest.Parse(t, `
steps:
  - name: rules
    source: {elements: [{r: 1}]}
  - name: rules-bc
    inputs: [rules]
    partitioning: BROADCAST
  - name: events
    source: {elements: [{k: "a"}]}
  - name: by-k
    inputs: [events]
    keyBy: record.k
  - name: tag
    inputs: [rules-bc, by-k]
    process:
      onElement: "{'emit': [input]}"
  - name: out
    sink: {call: out}
`)
	for _, mode := range []spec.RuntimeMode{spec.Batch, spec.Streaming} {
		got := enginetest.Run(t, job, mode, local.Options{}).SortedJSON("out")
		if want := []string{`"by-k"`, `"rules-bc"`}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: inputs seen %v, want %v", mode, got, want)
		}
	}
}
