package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned by Get for a name that was not written.
var ErrNotFound = errors.New("checkpoint: snapshot not found")

// Store is a directory of small objects named by slash-separated relative
// paths: a local directory (LocalStore) or a prefix of an S3 bucket (the
// worker's S3 store). It is all the engine needs from storage; everything
// else (checkpoint directories, the _COMPLETED marker, retention, savepoint
// copies) is built on top of it in this package, so the layout is the same
// on every backend.
//
// A checkpoints Store holds chk-<id>/ directories; one checkpoint or
// savepoint directory is itself a Store (Sub(checkpoints, "chk-7/"), or a
// Store opened at a savepoint's URL), holding:
//
//	_COMPLETED                       marker (JSON Meta), written last
//	source/<step>/<subtask>-of-<n>   a source subtask's reader position
//	keyed/<step>/<subtask>-of-<n>    a keyed subtask's state and timers, by key group
//	sink/<step>/<subtask>            a Transactional writer's committables
//	broadcast/<step>                 a process step's broadcast state
//
// Interface history (for implementers, e.g. the S3 store): until issue #7's
// second slice the Store was addressed by (checkpoint ID, stage, subtask,
// name) and had Complete/Latest/Completed/Highest/Retain methods; those are
// now functions of this package over the four methods below.
type Store interface {
	// Put writes the object name (overwriting it). A reader never sees a
	// partly written object.
	Put(ctx context.Context, name string, data []byte) error
	// Get reads the object name; ErrNotFound if there is none.
	Get(ctx context.Context, name string) ([]byte, error)
	// List returns the names of every object whose name starts with
	// prefix, at any depth, sorted. A prefix that matches nothing gives
	// an empty list, not an error.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes every object whose name starts with prefix.
	Delete(ctx context.Context, prefix string) error
}

// Sub returns the Store rooted at dir (ending in '/') inside s.
func Sub(s Store, dir string) Store {
	if p, ok := s.(sub); ok {
		return sub{p.s, p.dir + dir}
	}
	return sub{s, dir}
}

type sub struct {
	s   Store
	dir string
}

func (s sub) Put(ctx context.Context, name string, data []byte) error {
	return s.s.Put(ctx, s.dir+name, data)
}
func (s sub) Get(ctx context.Context, name string) ([]byte, error) { return s.s.Get(ctx, s.dir+name) }
func (s sub) Delete(ctx context.Context, prefix string) error      { return s.s.Delete(ctx, s.dir+prefix) }
func (s sub) List(ctx context.Context, prefix string) ([]string, error) {
	names, err := s.s.List(ctx, s.dir+prefix)
	for i, n := range names {
		names[i] = strings.TrimPrefix(n, s.dir)
	}
	return names, err
}

// LocalStore is a Store in a local directory: object a/b/c is the file
// Dir/a/b/c, written to a temporary name and renamed.
type LocalStore struct{ Dir string }

func (s LocalStore) file(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains("/"+name+"/", "/../") {
		return "", fmt.Errorf("checkpoint: bad object name %q", name)
	}
	return filepath.Join(s.Dir, filepath.FromSlash(name)), nil
}

func (s LocalStore) Put(_ context.Context, name string, data []byte) error {
	f, err := s.file(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		return err
	}
	tmp := f + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, f)
}

func (s LocalStore) Get(_ context.Context, name string) ([]byte, error) {
	f, err := s.file(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(f)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	return b, err
}

// List walks only the deepest directory the prefix names, so listing one
// checkpoint's step does not read the others.
func (s LocalStore) List(_ context.Context, prefix string) ([]string, error) {
	dir := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir = prefix[:i]
	}
	root := filepath.Join(s.Dir, filepath.FromSlash(dir))
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasSuffix(p, ".tmp") {
			return nil
		}
		rel, err := filepath.Rel(s.Dir, p)
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); strings.HasPrefix(rel, prefix) {
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

func (s LocalStore) Delete(ctx context.Context, prefix string) error {
	if strings.HasSuffix(prefix, "/") {
		// A whole directory: remove it at once.
		f, err := s.file(strings.TrimSuffix(prefix, "/"))
		if err != nil {
			return err
		}
		return os.RemoveAll(f)
	}
	names, err := s.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.Remove(filepath.Join(s.Dir, filepath.FromSlash(n))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// CompletedMarker is the object that makes a checkpoint or savepoint
// directory complete; it is written after every snapshot in it.
const CompletedMarker = "_COMPLETED"

// Meta is the content of a directory's _COMPLETED marker.
type Meta struct {
	// ID is the checkpoint's ID.
	ID int64 `json:"id"`
	// Kind is "checkpoint" or "savepoint".
	Kind string `json:"kind"`
	// TimeMs is when it completed (unix ms).
	TimeMs int64 `json:"timeMs"`
	// Format is the snapshot format version (FormatVersion).
	Format int `json:"format"`
}

// FormatVersion is the snapshot layout this package writes: 2 = snapshots
// by step name, keyed state by key group.
const FormatVersion = 2

// DirName is the name of checkpoint id's directory in a checkpoints Store.
func DirName(id int64) string { return fmt.Sprintf("chk-%d/", id) }

// MarkComplete writes dir's _COMPLETED marker.
func MarkComplete(ctx context.Context, dir Store, m Meta) error {
	if m.TimeMs == 0 {
		m.TimeMs = time.Now().UnixMilli()
	}
	m.Format = FormatVersion
	b, _ := json.Marshal(m)
	return dir.Put(ctx, CompletedMarker, b)
}

// ReadMeta reads a complete directory's marker; ErrNotFound if the
// directory is not complete.
func ReadMeta(ctx context.Context, dir Store) (Meta, error) {
	b, err := dir.Get(ctx, CompletedMarker)
	if err != nil {
		return Meta{}, err
	}
	var m Meta
	if len(b) > 0 { // the first slice wrote an empty marker
		if err := json.Unmarshal(b, &m); err != nil {
			return Meta{}, fmt.Errorf("checkpoint: %s: %w", CompletedMarker, err)
		}
	}
	return m, nil
}

// ids lists the checkpoint directories of a checkpoints Store by ID, and
// which are complete.
func ids(ctx context.Context, s Store) ([]int64, map[int64]bool, error) {
	names, err := s.List(ctx, "chk-")
	if err != nil {
		return nil, nil, err
	}
	seen := map[int64]bool{}
	done := map[int64]bool{}
	var out []int64
	for _, n := range names {
		d, rest, ok := strings.Cut(n, "/")
		if !ok {
			continue
		}
		id, err := strconv.ParseInt(strings.TrimPrefix(d, "chk-"), 10, 64)
		if err != nil || id <= 0 {
			continue
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
		if rest == CompletedMarker {
			done[id] = true
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, done, nil
}

// Completed lists the complete checkpoints of a checkpoints Store, oldest first.
func Completed(ctx context.Context, s Store) ([]int64, error) {
	all, done, err := ids(ctx, s)
	var out []int64
	for _, id := range all {
		if done[id] {
			out = append(out, id)
		}
	}
	return out, err
}

// Latest returns the newest complete checkpoint (ok false if none).
func Latest(ctx context.Context, s Store) (int64, bool, error) {
	c, err := Completed(ctx, s)
	if err != nil || len(c) == 0 {
		return 0, false, err
	}
	return c[len(c)-1], true, nil
}

// Highest returns the highest checkpoint ID ever started (0 if none), so
// a restarted job numbers its next checkpoints after it.
func Highest(ctx context.Context, s Store) (int64, error) {
	all, _, err := ids(ctx, s)
	if err != nil || len(all) == 0 {
		return 0, err
	}
	return all[len(all)-1], nil
}

// Retain deletes every checkpoint older than the newest keep complete ones
// (incomplete ones included).
func Retain(ctx context.Context, s Store, keep int) error {
	all, done, err := ids(ctx, s)
	if err != nil {
		return err
	}
	if keep < 1 {
		keep = 1
	}
	var complete []int64
	for _, id := range all {
		if done[id] {
			complete = append(complete, id)
		}
	}
	if len(complete) <= keep {
		return nil
	}
	oldest := complete[len(complete)-keep]
	for _, id := range all {
		if id < oldest {
			if err := s.Delete(ctx, DirName(id)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Opener opens the Store rooted at a directory URL (a local path, or
// s3://bucket/prefix/ on the worker).
type Opener func(url string) (Store, error)

// OpenLocal is the Opener of local paths (file:// URLs or plain paths).
func OpenLocal(url string) (Store, error) {
	if strings.Contains(url, "://") && !strings.HasPrefix(url, "file://") {
		return nil, fmt.Errorf("checkpoint: %q: only local paths are supported here", url)
	}
	return LocalStore{Dir: strings.TrimPrefix(url, "file://")}, nil
}

// Resolve turns a restore setting into the directory to restore from:
//
//   - "" restores nothing (nil);
//   - "latest" is the newest complete checkpoint in checkpoints, or nil (a
//     fresh start) when there is none;
//   - a number is that checkpoint in checkpoints, which must be complete;
//   - anything else is the URL of a checkpoint or savepoint directory,
//     opened with open, which must be complete.
//
// The error names what was asked for and why it cannot be restored.
func Resolve(ctx context.Context, checkpoints Store, from string, open Opener) (Store, Meta, error) {
	switch {
	case from == "":
		return nil, Meta{}, nil
	case from == "latest":
		if checkpoints == nil {
			return nil, Meta{}, fmt.Errorf("checkpoint: restore from latest needs a checkpoint store")
		}
		id, ok, err := Latest(ctx, checkpoints)
		if err != nil || !ok {
			return nil, Meta{}, err
		}
		dir := Sub(checkpoints, DirName(id))
		m, err := ReadMeta(ctx, dir)
		return dir, m, err
	}
	if id, err := strconv.ParseInt(from, 10, 64); err == nil {
		if checkpoints == nil {
			return nil, Meta{}, fmt.Errorf("checkpoint: restore from checkpoint %d needs a checkpoint store", id)
		}
		dir := Sub(checkpoints, DirName(id))
		m, err := ReadMeta(ctx, dir)
		if errors.Is(err, ErrNotFound) {
			c, _ := Completed(ctx, checkpoints)
			return nil, Meta{}, fmt.Errorf("checkpoint: checkpoint %d is not complete (complete: %v)", id, c)
		}
		return dir, m, err
	}
	if open == nil {
		open = OpenLocal
	}
	if !strings.HasSuffix(from, "/") {
		from += "/"
	}
	dir, err := open(from)
	if err != nil {
		return nil, Meta{}, err
	}
	m, err := ReadMeta(ctx, dir)
	if errors.Is(err, ErrNotFound) {
		return nil, Meta{}, fmt.Errorf("checkpoint: restore from %s: not a complete checkpoint or savepoint (no %s)", from, CompletedMarker)
	}
	if err != nil {
		return nil, Meta{}, fmt.Errorf("checkpoint: restore from %s: %w", from, err)
	}
	return dir, m, nil
}

// SnapshotName helpers: the names a subtask writes in a checkpoint directory.

// SourcePositionName is a source subtask's position; the parallelism is
// part of the name because a position only means something to the same
// subtask of the same parallelism.
func SourcePositionName(step string, subtask, parallelism int) string {
	return path.Join("source", step, fmt.Sprintf("%d-of-%d", subtask, parallelism))
}

// SinkName is a sink subtask's committables.
func SinkName(step string, subtask int) string { return path.Join("sink", step, strconv.Itoa(subtask)) }

// KeyedName is a keyed subtask's state, with the parallelism it ran at so
// a restore at another parallelism reads only the files whose key groups
// overlap its own.
func KeyedName(step string, subtask, parallelism int) string {
	return path.Join("keyed", step, fmt.Sprintf("%d-of-%d", subtask, parallelism))
}

// KeyedPrefix is the prefix of every keyed snapshot of step.
func KeyedPrefix(step string) string { return "keyed/" + step + "/" }

// BroadcastName is a process step's broadcast state (the same on every subtask).
func BroadcastName(step string) string { return path.Join("broadcast", step) }
