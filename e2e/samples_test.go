//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// sample is one manifest of config/samples and what its output must be.
type sample struct {
	file     string // under config/samples/
	expected string // under config/samples/expected/
	// rollingKey: the job ends in a rolling reduce, so its STREAMING output
	// holds an update per input record; the update with the largest count
	// "n" per rollingKey is the final result (as cmd/flinkjob/samples_test.go).
	rollingKey string
}

// boundedSamples run in both modes; their output is checked in MinIO.
var boundedSamples = []sample{
	{"wordcount-batch.yaml", "wordcount.jsonl", "word"},
	{"wordcount-streaming.yaml", "wordcount.jsonl", "word"},
	{"wordcount-checkpointed.yaml", "wordcount.jsonl", "word"},
	{"windowed-temperatures.yaml", "windowed-temperatures.jsonl", ""},
	{"orders-join.yaml", "orders-join.jsonl", ""},
}

// unboundedSamples run in STREAMING only (BATCH is refused at admission).
var unboundedSamples = []string{"datagen-unbounded.yaml"}

var modes = []string{"BATCH", "STREAMING"}

func samplesDir() string { return filepath.Join(cfg.repoRoot, "config", "samples") }

// sampleName is the FlinkJob name of a sample run in a mode.
func sampleName(s sample, mode string) string {
	return strings.TrimSuffix(s.file, ".yaml") + "-" + strings.ToLower(mode[:1])
}

// loadManifest reads a sample as a generic object.
func loadManifest(file string) (map[string]any, error) {
	b, err := os.ReadFile(filepath.Join(samplesDir(), file))
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return m, nil
}

// isUnbounded says whether a manifest has an unbounded source (a datagen
// without count).
func isUnbounded(m map[string]any) bool {
	for _, st := range steps(m) {
		if src, ok := st["source"].(map[string]any); ok {
			if dg, ok := src["datagen"].(map[string]any); ok {
				if _, bounded := dg["count"]; !bounded {
					return true
				}
			}
		}
	}
	return false
}

func steps(m map[string]any) []map[string]any {
	spec, _ := m["spec"].(map[string]any)
	list, _ := spec["steps"].([]any)
	var out []map[string]any
	for _, s := range list {
		if st, ok := s.(map[string]any); ok {
			out = append(out, st)
		}
	}
	return out
}

// forCluster rewrites a sample for the cluster: name, namespace and mode;
// the local input paths (config/samples/data/...) moved to the copy of the
// data under the run's prefix in MinIO, each files sink to its own prefix
// (returned), and spec.storage pointing at MinIO with the credentials
// Secret. A local path the rewrite does not know fails: pods cannot see it.
func forCluster(m map[string]any, name, mode string) (manifest []byte, outPrefixes []string, err error) {
	meta, _ := m["metadata"].(map[string]any)
	if meta == nil {
		return nil, nil, fmt.Errorf("no metadata")
	}
	meta["name"] = name
	meta["namespace"] = cfg.ns
	spec, _ := m["spec"].(map[string]any)
	if spec == nil {
		return nil, nil, fmt.Errorf("no spec")
	}
	if mode != "" {
		spec["runtimeMode"] = mode
	}
	spec["storage"] = map[string]any{"s3": map[string]any{
		"endpoint": cfg.podEndpoint, "bucket": cfg.bucket, "prefix": cfg.prefix,
		"credentialsSecretRef": map[string]any{"name": credentialsSecret},
	}}
	for _, st := range steps(m) {
		if src, ok := st["source"].(map[string]any); ok {
			if f, ok := src["files"].(map[string]any); ok {
				p, _ := f["path"].(string)
				rel, ok := strings.CutPrefix(p, "config/samples/data/")
				if !ok {
					return nil, nil, fmt.Errorf("step %v: source path %q is not under config/samples/data/", st["name"], p)
				}
				f["path"] = fmt.Sprintf("s3://%s/%s/data/%s", cfg.bucket, cfg.prefix, rel)
			}
		}
		if sink, ok := st["sink"].(map[string]any); ok {
			if f, ok := sink["files"].(map[string]any); ok {
				if p, _ := f["path"].(string); strings.HasPrefix(p, "s3://") {
					return nil, nil, fmt.Errorf("step %v: sink path %q is already s3://", st["name"], p)
				}
				out := fmt.Sprintf("%s/out/%s/%v", cfg.prefix, name, st["name"])
				f["path"] = fmt.Sprintf("s3://%s/%s/", cfg.bucket, out)
				outPrefixes = append(outPrefixes, out)
			}
		}
	}
	b, err := yaml.Marshal(m)
	return b, outPrefixes, err
}

// expectedLines reads an expected output file, sorted.
func expectedLines(file string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(samplesDir(), "expected", file))
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return lines, nil
}

// lastPerKey keeps, per value of key, the line with the largest "n": the
// final result of a STREAMING rolling count.
func lastPerKey(lines []string, key string) ([]string, error) {
	type upd struct {
		n    float64
		line string
	}
	last := map[string]upd{}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			return nil, fmt.Errorf("%q: %w", l, err)
		}
		k := fmt.Sprint(m[key])
		n, ok := m["n"].(float64)
		if !ok {
			return nil, fmt.Errorf("%q: no numeric n", l)
		}
		if prev, seen := last[k]; !seen || n > prev.n {
			last[k] = upd{n, l}
		}
	}
	out := make([]string, 0, len(last))
	for _, u := range last {
		out = append(out, u.line)
	}
	sort.Strings(out)
	return out, nil
}
