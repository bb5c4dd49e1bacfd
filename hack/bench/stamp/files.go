package stamp

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/flinkjob/flinkjob/engine/udf"
)

// The environment of a bench worker process in a latency run (set by the
// bench through worker/runner's Options.Env).
const (
	// EnvEvents and EnvParallelism size the stamps: the run's events and
	// its source parallelism.
	EnvEvents      = "FLINKJOB_BENCH_LATENCY_EVENTS"
	EnvParallelism = "FLINKJOB_BENCH_LATENCY_PARALLELISM"
	// EnvDir is the run directory the stamps and samples go to when the
	// process ends (empty: kept in memory only, as in a run measuring the
	// peak, where only the wall time counts).
	EnvDir = "FLINKJOB_BENCH_LATENCY_DIR"
)

// Worker prepares a worker process of a latency run from the environment:
// its bench-stamp steps stamp into memory, and the bench-latency sink
// writes each writer's samples to the run directory when it closes. flush,
// called when the worker has returned, writes the stamps this process took
// (only its source subtask takes any). Without EnvEvents it does nothing:
// the process stamps nothing and has no latency sink.
func Worker() (flush func() error, err error) {
	flush = func() error { return nil }
	if os.Getenv(EnvEvents) == "" {
		return flush, nil
	}
	events, err := strconv.ParseInt(os.Getenv(EnvEvents), 10, 64)
	if err != nil || events < 0 {
		return flush, fmt.Errorf("%s=%q: want an event count", EnvEvents, os.Getenv(EnvEvents))
	}
	p, err := strconv.ParseInt(os.Getenv(EnvParallelism), 10, 64)
	if err != nil || p <= 0 {
		return flush, fmt.Errorf("%s=%q: want the source parallelism", EnvParallelism, os.Getenv(EnvParallelism))
	}
	dir := os.Getenv(EnvDir)
	st := New(events, p)
	Use(st)
	udf.RegisterSink(SinkName, &Sink{Dir: dir})
	return func() error {
		if dir == "" {
			return nil
		}
		return writeCreated(dir, st)
	}, nil
}

// The files are little-endian int64 pairs: (event, generated ns) in
// created-<pid>.bin, (event, arrival ns) in samples-<subtask>-<pid>.bin.

func writeCreated(dir string, st *Stamps) error {
	var b []byte
	for n := range st.Created {
		if t := st.Created[n].Load(); t != 0 {
			b = binary.LittleEndian.AppendUint64(b, uint64(n))
			b = binary.LittleEndian.AppendUint64(b, uint64(t))
		}
	}
	if b == nil {
		return nil // no source subtask here
	}
	return writeFile(filepath.Join(dir, fmt.Sprintf("created-%d.bin", os.Getpid())), b)
}

func writeSamples(dir string, index int, samples []Sample) error {
	b := make([]byte, 0, 16*len(samples))
	for _, s := range samples {
		b = binary.LittleEndian.AppendUint64(b, uint64(s.Event))
		b = binary.LittleEndian.AppendUint64(b, uint64(s.Arrival))
	}
	return writeFile(filepath.Join(dir, fmt.Sprintf("samples-%d-%d.bin", index, os.Getpid())), b)
}

// writeFile writes whole or not at all: a file Read sees is complete.
func writeFile(path string, b []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Read loads what the worker processes of a run wrote to dir: their stamps
// into st (a subtask's start is the stamp of its first event, event i of
// subtask i, as the stamp step takes it in process) and their samples.
func Read(dir string, st *Stamps) ([]Sample, error) {
	created, err := readPairs(filepath.Join(dir, "created-*.bin"))
	if err != nil {
		return nil, err
	}
	for _, c := range created {
		n, t := c[0], c[1]
		if n < 0 || n >= int64(len(st.Created)) {
			return nil, fmt.Errorf("%s: event %d is not in the run's %d", dir, n, len(st.Created))
		}
		st.Created[n].Store(t)
		if n < st.P {
			st.Start[n].Store(t)
		}
	}
	pairs, err := readPairs(filepath.Join(dir, "samples-*.bin"))
	if err != nil {
		return nil, err
	}
	samples := make([]Sample, len(pairs))
	for i, p := range pairs {
		samples[i] = Sample{Event: p[0], Arrival: p[1]}
	}
	return samples, nil
}

func readPairs(pattern string) ([][2]int64, error) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	var out [][2]int64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if len(b)%16 != 0 {
			return nil, fmt.Errorf("%s: %d bytes, not int64 pairs", f, len(b))
		}
		for ; len(b) > 0; b = b[16:] {
			out = append(out, [2]int64{int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint64(b[8:]))})
		}
	}
	return out, nil
}
