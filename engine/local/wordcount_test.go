package local_test

import (
	"reflect"
	"testing"

	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
)

const wordCount = `
parallelism: 2
steps:
  - name: lines
    source:
      elements:
        - {line: "to be or not to be"}
        - {line: "that is the question"}
        - {line: "to be is to do"}
  - name: words
    flatMap: "record.line.split(' ').filter(w, w != '').map(w, {'word': w, 'n': 1})"
  - name: counts
    keyBy: "record.word"
    reduce: "{'word': acc.word, 'n': acc.n + record.n}"
  - name: out
    sink: {call: out}
`

func TestWordCountModes(t *testing.T) {
	want := map[string]int64{"to": 4, "be": 3, "or": 1, "not": 1, "that": 1, "is": 2, "the": 1, "question": 1, "do": 1}
	for _, mode := range []spec.RuntimeMode{spec.Batch, spec.Streaming} {
		c := enginetest.Run(t, enginetest.Parse(t, wordCount), mode, local.Options{})
		final := map[string]int64{}
		updates := 0
		for _, v := range c.Values("out") {
			m := v.(map[string]any)
			final[m["word"].(string)] = m["n"].(int64)
			updates++
		}
		if !reflect.DeepEqual(final, want) {
			t.Errorf("%s: counts %v, want %v", mode, final, want)
		}
		// STREAMING emits an update per word; BATCH only the final count per key.
		wantUpdates := len(want)
		if mode == spec.Streaming {
			wantUpdates = 15
		}
		if updates != wantUpdates {
			t.Errorf("%s: %d records, want %d", mode, updates, wantUpdates)
		}
	}
}
