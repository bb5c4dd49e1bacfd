// Package watermark implements event-time progress as Flink defines it:
// generators that derive watermarks from the timestamps a source sees
// (bounded out-of-orderness; monotonous is the zero bound), idleness so a
// quiet source does not hold everyone back, and the valve that combines the
// watermarks of several input channels into their minimum.
package watermark

import (
	"math"

	"github.com/flinkjob/flinkjob/engine/value"
)

// Generator follows one source subtask's timestamps. Its watermark is
// maxTimestamp - maxOutOfOrderness - 1, as Flink's
// BoundedOutOfOrdernessWatermarks: every record with a timestamp at or
// below the watermark is late.
type Generator struct {
	bound int64
	maxTs int64
}

// NewGenerator returns a generator allowing records up to boundMs out of order.
func NewGenerator(boundMs int64) *Generator {
	return &Generator{bound: boundMs, maxTs: math.MinInt64}
}

// OnEvent records a timestamp.
func (g *Generator) OnEvent(ts int64) {
	if ts > g.maxTs {
		g.maxTs = ts
	}
}

// Current is the watermark implied by the timestamps seen so far.
func (g *Generator) Current() int64 {
	if g.maxTs == math.MinInt64 {
		return value.MinWatermark
	}
	if g.maxTs < math.MinInt64+g.bound+1 {
		return value.MinWatermark
	}
	return g.maxTs - g.bound - 1
}

// Valve combines per-channel watermarks: the output is the minimum over the
// channels that are not idle, and it only moves forward. A finished channel
// sends MaxWatermark, so it stops holding the minimum back.
type Valve struct {
	wms  []int64
	idle []bool
	out  int64
}

// NewValve returns a valve over n channels.
func NewValve(n int) *Valve {
	v := &Valve{wms: make([]int64, n), idle: make([]bool, n), out: value.MinWatermark}
	for i := range v.wms {
		v.wms[i] = value.MinWatermark
	}
	return v
}

// Current is the last combined watermark.
func (v *Valve) Current() int64 { return v.out }

// Update records a watermark from channel ch (which becomes active) and
// returns the combined watermark and whether it advanced.
func (v *Valve) Update(ch int, wm int64) (int64, bool) {
	v.idle[ch] = false
	if wm > v.wms[ch] {
		v.wms[ch] = wm
	}
	return v.advance()
}

// SetIdle marks channel ch idle or active. An idle channel is left out of
// the minimum, which may let the combined watermark advance.
func (v *Valve) SetIdle(ch int, idle bool) (int64, bool) {
	v.idle[ch] = idle
	return v.advance()
}

// AllIdle reports whether every channel is idle.
func (v *Valve) AllIdle() bool {
	for _, i := range v.idle {
		if !i {
			return false
		}
	}
	return true
}

func (v *Valve) advance() (int64, bool) {
	min := int64(math.MaxInt64)
	any := false
	for i, wm := range v.wms {
		if v.idle[i] {
			continue
		}
		any = true
		if wm < min {
			min = wm
		}
	}
	if !any || min <= v.out {
		return v.out, false
	}
	v.out = min
	return min, true
}
