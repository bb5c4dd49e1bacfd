package connector

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

func TestPrintSinkConcurrentWritersNeverTearLines(t *testing.T) {
	var buf bytes.Buffer
	sink := NewPrintSink(spec.PrintSink{Prefix: "out> "}, &buf)
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		w, err := sink.Open(context.Background(), i, writers)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				v := map[string]any{"w": int64(i), "j": int64(j), "pad": strings.Repeat("x", 200)}
				if err := w.Write(&value.Record{Value: v}); err != nil {
					t.Error(err)
					return
				}
			}
			_ = w.Close()
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != writers*each {
		t.Fatalf("%d lines, want %d", len(lines), writers*each)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		js, ok := strings.CutPrefix(l, "out> ")
		if !ok {
			t.Fatalf("line without prefix: %q", l)
		}
		v, err := value.FromJSON([]byte(js))
		if err != nil {
			t.Fatalf("torn line %q: %v", l, err)
		}
		m := v.(map[string]any)
		seen[fmt.Sprint(m["w"], "/", m["j"])] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct records, want %d", len(seen), writers*each)
	}
}

func TestPrintSinkFormat(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewPrintSink(spec.PrintSink{}, &buf).Open(context.Background(), 0, 1)
	for _, v := range []any{map[string]any{"b": int64(1), "a": "x"}, "s", nil, 2.0} {
		if err := w.Write(&value.Record{Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	if want := "{\"a\":\"x\",\"b\":1}\n\"s\"\nnull\n2.0\n"; buf.String() != want {
		t.Fatalf("got %q want %q", buf.String(), want)
	}
}

func TestDiscardSink(t *testing.T) {
	w, err := NewDiscardSink().Open(context.Background(), 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(&value.Record{Value: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Abort()
}
