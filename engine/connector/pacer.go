package connector

import (
	"context"
	"time"
)

// pacer spreads a generator's records over time at a rate: each of a
// source's parallel subtasks takes an equal share of ratePerSecond. The zero
// pacer (no rate) never waits.
type pacer struct {
	start   time.Time
	every   time.Duration // one record per `every`; 0 means as fast as possible
	emitted int64
}

func newPacer(ratePerSecond int64, parallelism int) pacer {
	p := pacer{start: time.Now()}
	if ratePerSecond > 0 {
		p.every = time.Duration(float64(time.Second) * float64(parallelism) / float64(ratePerSecond))
	}
	return p
}

// due returns how many of up to max records may be emitted now. When none
// is due yet it waits for the next one (or for ctx), so a Read call blocks
// only until it has something to emit.
func (p *pacer) due(ctx context.Context, max int) (int, error) {
	if p.every <= 0 {
		return max, nil
	}
	due := int64(time.Since(p.start)/p.every) + 1 - p.emitted
	if due <= 0 {
		t := time.NewTimer(time.Until(p.start.Add(time.Duration(p.emitted) * p.every)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		}
		due = 1
	}
	return int(min(int64(max), due)), nil
}

// sent records that n records went out.
func (p *pacer) sent(n int) { p.emitted += int64(n) }

// restart begins pacing anew from now (after a restore).
func (p *pacer) restart() { p.start, p.emitted = time.Now(), 0 }
