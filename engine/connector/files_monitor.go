package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"sort"
	"time"
)

// Continuous mode of the files source (monitorInterval set), as Flink's
// FileSource.monitorContinuously: the source is unbounded; every subtask
// lists the path at the interval and reads, oldest listing first and by name
// within one listing, the files that appeared since, each file once (a file
// is known by its name: rewriting a file that was read does not read it
// again). A file belongs to subtask fnv32a(name) % parallelism, so the split
// does not depend on what else is in the directory or when it appeared.
// Writers should make files appear whole (a rename, or an S3 upload, which
// is atomic): names starting with "_" or "." are skipped, so in-progress
// files written under such names are never read half-written.
//
// The position stored in checkpoints is the set of files read to the end
// plus the file being read and how many records of it were read; a restored
// reader lists again and continues with that file, then the ones it has not
// read. The set grows with the number of files read, one name each.

// maxIdleWait bounds how long Read waits for new files before returning
// with nothing, so the task can pass checkpoint barriers while the
// directory is quiet.
const maxIdleWait = 200 * time.Millisecond

type monitorReader struct {
	src                *fileSource
	ctx                context.Context
	index, parallelism int
	done               map[string]bool // files read to the end
	queued             map[string]bool
	queue              []string // files found and not read yet, in order
	cur                string   // the file being read, when dec is set
	dec                decoder
	rc                 io.Closer
	nrec               int64
	lastList           time.Time
}

// owner is the subtask that reads a file of the continuous source.
func owner(name string, parallelism int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return int(h.Sum32() % uint32(parallelism))
}

func (r *monitorReader) Read(ctx context.Context, max int, emit func(v any)) error {
	if max < 1 {
		max = 1
	}
	for n := 0; n < max; {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.dec == nil {
			if len(r.queue) == 0 {
				if n > 0 {
					return nil
				}
				if wait := r.src.monitor - time.Since(r.lastList); !r.lastList.IsZero() && wait > 0 {
					t := time.NewTimer(min(wait, maxIdleWait))
					select {
					case <-ctx.Done():
						t.Stop()
						return ctx.Err()
					case <-t.C:
					}
					if wait > maxIdleWait {
						return nil
					}
				}
				if err := r.list(); err != nil {
					return err
				}
				if len(r.queue) == 0 {
					return nil
				}
			}
			name := r.queue[0]
			r.queue = r.queue[1:]
			delete(r.queued, name)
			if err := r.open(name); err != nil {
				return err
			}
		}
		v, err := r.dec.decode()
		if err == io.EOF {
			r.done[r.cur] = true
			r.closeCurrent()
			continue
		}
		if err != nil {
			m := malformedAt(err, r.src.malformed, r.src.loc.URL(r.cur))
			if m == nil {
				return err
			}
			v = m
		}
		r.nrec++
		emit(v)
		n++
	}
	return nil
}

// Locate says where the value emitted last came from (Locator).
func (r *monitorReader) Locate() ([]byte, string) {
	if r.dec == nil {
		return nil, ""
	}
	return locate(r.dec, r.src.loc.URL(r.cur))
}

// list finds this subtask's files that are neither read nor queued.
func (r *monitorReader) list() error {
	r.lastList = time.Now()
	files, err := r.src.loc.List(r.ctx)
	if errors.Is(err, fs.ErrNotExist) {
		// Nothing there yet is normal for a directory being filled.
		return nil
	}
	if err != nil {
		return fmt.Errorf("files source: %w", err)
	}
	var fresh []string
	for _, f := range files {
		n := f.Name
		if r.done[n] || r.queued[n] || (r.dec != nil && n == r.cur) || owner(n, r.parallelism) != r.index {
			continue
		}
		fresh = append(fresh, n)
	}
	sort.Strings(fresh)
	if r.queued == nil {
		r.queued = map[string]bool{}
	}
	for _, n := range fresh {
		r.queued[n] = true
	}
	r.queue = append(r.queue, fresh...)
	return nil
}

func (r *monitorReader) open(name string) error {
	dec, c, err := r.src.openFile(r.ctx, name)
	if err != nil {
		return err
	}
	r.cur, r.dec, r.rc, r.nrec = name, dec, c, 0
	return nil
}

func (r *monitorReader) closeCurrent() {
	if r.rc != nil {
		_ = r.rc.Close()
	}
	r.rc, r.dec, r.cur = nil, nil, ""
}

// monitorPosition is the continuous reader's checkpointed position.
type monitorPosition struct {
	Done    []string `json:"done"`
	Current string   `json:"current,omitempty"`
	Records int64    `json:"records,omitempty"`
}

func (r *monitorReader) Position() ([]byte, error) {
	p := monitorPosition{Done: make([]string, 0, len(r.done))}
	for n := range r.done {
		p.Done = append(p.Done, n)
	}
	sort.Strings(p.Done)
	if r.dec != nil {
		p.Current, p.Records = r.cur, r.nrec
	}
	return json.Marshal(p)
}

// Seek restores a position: the files read stay read, and the file that
// was being read is reopened past the records already read. A file that
// was being read and has since disappeared is an error: its remaining
// records would be lost.
func (r *monitorReader) Seek(pos []byte) error {
	var p monitorPosition
	if err := json.Unmarshal(pos, &p); err != nil {
		return fmt.Errorf("files source: bad position %q: %w", truncate(string(pos), 80), err)
	}
	r.closeCurrent()
	r.done = make(map[string]bool, len(p.Done))
	for _, n := range p.Done {
		r.done[n] = true
	}
	r.queue, r.queued = nil, nil
	if p.Current == "" {
		return nil
	}
	if err := r.open(p.Current); err != nil {
		return err
	}
	if err := skipRecords(r.dec, p.Records, r.src.loc.URL(p.Current)); err != nil {
		return err
	}
	r.nrec = p.Records
	return nil
}

func (r *monitorReader) Close() error {
	r.closeCurrent()
	return nil
}
