package connector

import (
	"fmt"
	"io"
	"os"

	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/projection"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Env is what connectors need from where the job runs.
type Env struct {
	// S3 configures s3:// paths.
	S3 S3Config
	// Stdout receives print sinks (default os.Stdout).
	Stdout io.Writer
	// CallSink looks up Go sinks registered with the Go SDK (package udf),
	// for `sink: {call: name}`.
	CallSink func(name string) (Sink, bool)
}

// NewSource creates the connector of a source step. datagen is the step's
// compiled datagen expression and fields the part of its records the job
// reads (nil: all), both from the plan; sources that can leave the other
// fields out do (nexmark).
func NewSource(s *spec.Source, datagen *expr.Program, fields *projection.Fields, env Env) (Source, error) {
	switch {
	case s.Elements != nil:
		vals := make([]any, len(s.Elements))
		for i, e := range s.Elements {
			v, err := value.FromJSON(e.Raw)
			if err != nil {
				return nil, fmt.Errorf("elements[%d]: %w", i, err)
			}
			vals[i] = v
		}
		return Elements{Values: vals}, nil
	case s.Datagen != nil:
		count := int64(-1)
		if s.Datagen.Count != nil {
			count = *s.Datagen.Count
		}
		return Datagen{Value: datagen, Count: count, RatePerSecond: s.Datagen.RatePerSecond}, nil
	case s.Files != nil:
		src, err := NewFileSource(*s.Files, env.S3)
		if err == nil && s.MalformedOutput != "" {
			src.(*fileSource).malformed = true
		}
		return src, err
	case s.Nexmark != nil:
		x := NewNexmark(*s.Nexmark)
		x.Fields = fields
		return x, nil
	case s.Kafka != nil:
		return NewKafkaSource(s), nil
	}
	return nil, fmt.Errorf("source sets none of elements, datagen, files, nexmark, kafka")
}

// NewSink creates the connector of a sink step.
func NewSink(s *spec.Sink, env Env) (Sink, error) {
	switch {
	case s.Print != nil:
		w := env.Stdout
		if w == nil {
			w = os.Stdout
		}
		return NewPrintSink(*s.Print, w), nil
	case s.Files != nil:
		return NewFileSink(*s.Files, env.S3)
	case s.Discard != nil:
		return NewDiscardSink(), nil
	case s.Kafka != nil:
		return NewKafkaSink(*s.Kafka)
	case s.Call != "":
		var sk Sink
		ok := false
		if env.CallSink != nil {
			sk, ok = env.CallSink(s.Call)
		}
		if !ok {
			return nil, fmt.Errorf("no sink named %q is registered in this binary", s.Call)
		}
		return sk, nil
	}
	return nil, fmt.Errorf("sink sets none of print, files, discard, call, kafka")
}
