package connector

import (
	"context"
	"fmt"
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

// strided is the position of a generator source whose subtask i of n
// produces the numbers i, i+n, i+2n, ... (datagen, nexmark): the next
// number is what a checkpoint stores, and the pacer limits the rate.
type strided struct {
	name       string // for errors
	next, step int64
	pace       pacer
}

func newStrided(name string, index, parallelism int, ratePerSecond int64) strided {
	return strided{name: name, next: int64(index), step: int64(parallelism), pace: newPacer(ratePerSecond, parallelism)}
}

// Position is the next number (what a checkpoint stores).
func (s *strided) Position() ([]byte, error) { return encodeInts(s.next), nil }

// Seek resumes at a number Position returned. A rate starts over from now.
func (s *strided) Seek(pos []byte) error {
	v, err := decodeInts(pos, 1)
	if err != nil {
		return err
	}
	if (v[0]-s.next)%s.step != 0 {
		return fmt.Errorf("%s: position %d is not this subtask's (first %d, step %d)", s.name, v[0], s.next, s.step)
	}
	s.next = v[0]
	s.pace.restart()
	return nil
}
