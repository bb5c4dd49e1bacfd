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

// pacerQuantum is the least stretch of its schedule a paced generator
// emits at once, when its rate gives more than one record in it: at high
// rates, emitting each record as soon as it is due made a read (and the
// watermark and flush after it) of a few records, and that per-read work
// cost more than the records (a paced run used twice the CPU per record of
// an unpaced one). A record waits at most this long for the others of its
// step, counted as latency from its due time.
const pacerQuantum = 200 * time.Microsecond

// due returns how many of up to limit records may be emitted now: those
// due, once at least a quantum's worth (or limit) are. Until then it waits
// (or for ctx), so a Read call blocks only until it has something to emit.
func (p *pacer) due(ctx context.Context, limit int) (int, error) {
	if p.every <= 0 {
		return limit, nil
	}
	due := int64(time.Since(p.start)/p.every) + 1 - p.emitted
	want := max(min(int64(limit), int64(pacerQuantum/p.every)), 1)
	if due < want {
		// Record k (counting from 0) is due at start + k*every.
		t := time.NewTimer(time.Until(p.start.Add(time.Duration(p.emitted+want-1) * p.every)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		}
		due = want
	}
	return int(min(int64(limit), due)), nil
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
