package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
)

// Manifest is a FlinkJob as read from a file.
type Manifest = v1alpha1.FlinkJob

// ReadManifest reads a FlinkJob from a YAML or JSON file ("-" is stdin).
// A multi-document file may hold other objects (a Secret, say); the
// FlinkJob is picked out. Unknown fields are errors, naming the field.
func ReadManifest(path string) (*Manifest, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	return ParseManifest(path, data)
}

// ParseManifest decodes the FlinkJob document of data.
func ParseManifest(name string, data []byte) (*Manifest, error) {
	docs := splitYAML(data)
	var found []*Manifest
	for i, doc := range docs {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, fmt.Errorf("%s: document %d is not valid YAML: %v", name, i+1, err)
		}
		if head.Kind != "FlinkJob" {
			continue
		}
		if gv := v1alpha1.GroupVersion.String(); head.APIVersion != gv {
			return nil, fmt.Errorf("%s: apiVersion is %q, want %q", name, head.APIVersion, gv)
		}
		var m Manifest
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		// sigs.k8s.io/json reports unknown and duplicate fields with their
		// path (spec.steps[0].sourec), as kube-apiserver does.
		strict, err := kjson.UnmarshalStrict(js, &m)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		if len(strict) > 0 {
			var msgs []string
			for _, e := range strict {
				msgs = append(msgs, e.Error())
			}
			return nil, fmt.Errorf("%s: %s", name, strings.Join(msgs, "; "))
		}
		found = append(found, &m)
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%s: no document of kind FlinkJob (apiVersion %s)", name, v1alpha1.GroupVersion)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%s: %d FlinkJob documents; give one per file", name, len(found))
}

func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), data...), []byte("\n---")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}
