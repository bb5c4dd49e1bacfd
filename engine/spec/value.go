package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Value is any JSON value written inline in a manifest (an element of an
// elements source). It is kept as raw JSON so the CRD can carry it unpruned.
// +kubebuilder:validation:XPreserveUnknownFields
// +kubebuilder:validation:Type=""
type Value struct {
	Raw []byte `json:"-"`
}

// MarshalJSON writes the raw JSON (null when empty).
func (v Value) MarshalJSON() ([]byte, error) {
	if len(v.Raw) == 0 {
		return []byte("null"), nil
	}
	return v.Raw, nil
}

// UnmarshalJSON keeps a copy of the raw JSON.
func (v *Value) UnmarshalJSON(b []byte) error {
	if !json.Valid(b) {
		return fmt.Errorf("invalid JSON value")
	}
	v.Raw = append(v.Raw[:0], bytes.TrimSpace(b)...)
	return nil
}

// DeepCopyInto copies the raw bytes.
func (v *Value) DeepCopyInto(out *Value) {
	*out = *v
	if v.Raw != nil {
		out.Raw = append([]byte(nil), v.Raw...)
	}
}

// Get parses a duration; the empty string is zero.
func (d Duration) Get() (time.Duration, error) {
	if d == "" {
		return 0, nil
	}
	return time.ParseDuration(string(d))
}

// Millis is the duration in milliseconds; call Validate first, errors read as zero.
func (d Duration) Millis() int64 {
	v, _ := d.Get()
	return v.Milliseconds()
}
