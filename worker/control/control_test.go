package control

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestJSONEncoding pins the JSON of every control object: running jobs,
// a manager of another version and stored savepoints read these bytes, so
// a renamed field or tag must fail here, not in production.
func TestJSONEncoding(t *testing.T) {
	for _, c := range []struct {
		name   string
		v      any
		golden string
		into   any
	}{
		{"SavepointRequest", SavepointRequest{Nonce: "upgrade-3", Stop: true},
			`{"nonce":"upgrade-3","stop":true}`, &SavepointRequest{}},
		{"SavepointRequest zero", SavepointRequest{},
			`{"nonce":"","stop":false}`, &SavepointRequest{}},
		{"SavepointResult", SavepointResult{Nonce: "7", Path: "s3://b/p/savepoints/sp-12-7/", CheckpointID: 12, TimeMs: 1763700000123, Error: "boom"},
			`{"nonce":"7","path":"s3://b/p/savepoints/sp-12-7/","checkpointId":12,"timeMs":1763700000123,"error":"boom"}`, &SavepointResult{}},
		// The manager tells a failure by error != "" or path == "": both
		// are always present.
		{"SavepointResult zero", SavepointResult{},
			`{"nonce":"","path":"","checkpointId":0,"timeMs":0,"error":""}`, &SavepointResult{}},
		{"LatestCheckpoint", LatestCheckpoint{ID: 42, Path: "s3://b/p/checkpoints/chk-42/", TimeMs: 1763700000456},
			`{"id":42,"path":"s3://b/p/checkpoints/chk-42/","timeMs":1763700000456}`, &LatestCheckpoint{}},
	} {
		b, err := json.Marshal(c.v)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(b) != c.golden {
			t.Errorf("%s encodes as\n\t%s\nwant\n\t%s", c.name, b, c.golden)
		}
		// And the golden bytes (what an older writer wrote) decode back.
		if err := json.Unmarshal([]byte(c.golden), c.into); err != nil {
			t.Fatalf("%s: decoding %s: %v", c.name, c.golden, err)
		}
		if got := reflect.ValueOf(c.into).Elem().Interface(); got != c.v {
			t.Errorf("%s: %s decodes as %+v, want %+v", c.name, c.golden, got, c.v)
		}
	}
}

// TestObjectNames pins the object names under the control URL.
func TestObjectNames(t *testing.T) {
	for got, want := range map[string]string{
		LatestObject:                       "checkpoint-latest.json",
		SavepointRequestObject:             "savepoint-request.json",
		SavepointFinalObject:               "savepoint-final.json",
		SavepointResultObject("upgrade-3"): "savepoint-upgrade-3.json",
		FinalNonce:                         "final",
	} {
		if got != want {
			t.Errorf("object name %q, want %q", got, want)
		}
	}
}
