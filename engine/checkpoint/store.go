package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNotFound is returned by Get for a snapshot that was not written.
var ErrNotFound = errors.New("checkpoint: snapshot not found")

// Store keeps checkpoint snapshots. A checkpoint's snapshots are written
// with Put by the subtasks that acknowledge it; Complete then marks it
// complete (only complete checkpoints are restored from).
type Store interface {
	// Put writes the snapshot name of subtask of stage in checkpoint id.
	Put(ctx context.Context, id int64, stage, subtask int, name string, data []byte) error
	// Get reads a snapshot; ErrNotFound if it was not written.
	Get(ctx context.Context, id int64, stage, subtask int, name string) ([]byte, error)
	// Complete marks checkpoint id complete.
	Complete(ctx context.Context, id int64) error
	// Latest returns the newest complete checkpoint (ok false if none).
	Latest(ctx context.Context) (id int64, ok bool, err error)
	// Completed lists the complete checkpoints, oldest first.
	Completed(ctx context.Context) ([]int64, error)
	// Highest returns the highest checkpoint ID ever started (0 if none),
	// so a restored job numbers its next checkpoints after it.
	Highest(ctx context.Context) (int64, error)
	// Retain deletes every checkpoint older than the newest keep complete ones.
	Retain(ctx context.Context, keep int) error
}

// LocalStore is a Store in a local directory: Dir/chk-<id>/<stage>-<subtask>-<name>,
// with an empty _COMPLETED file in a complete checkpoint's directory.
// Files are written to a temporary name and renamed.
type LocalStore struct{ Dir string }

const completedMarker = "_COMPLETED"

func (s LocalStore) dir(id int64) string { return filepath.Join(s.Dir, fmt.Sprintf("chk-%d", id)) }

func snapName(stage, subtask int, name string) string {
	return fmt.Sprintf("%d-%d-%s", stage, subtask, name)
}

func (s LocalStore) Put(_ context.Context, id int64, stage, subtask int, name string, data []byte) error {
	d := s.dir(id)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	return writeFile(filepath.Join(d, snapName(stage, subtask, name)), data)
}

func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (s LocalStore) Get(_ context.Context, id int64, stage, subtask int, name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(s.dir(id), snapName(stage, subtask, name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	return b, err
}

func (s LocalStore) Complete(_ context.Context, id int64) error {
	d := s.dir(id)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	return writeFile(filepath.Join(d, completedMarker), nil)
}

// ids lists the checkpoint directories, by ID, and which are complete.
func (s LocalStore) ids() ([]int64, map[int64]bool, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var ids []int64
	done := map[int64]bool{}
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "chk-")
		if !ok || !e.IsDir() {
			continue
		}
		id, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
		if _, err := os.Stat(filepath.Join(s.Dir, e.Name(), completedMarker)); err == nil {
			done[id] = true
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, done, nil
}

func (s LocalStore) Completed(context.Context) ([]int64, error) {
	ids, done, err := s.ids()
	var out []int64
	for _, id := range ids {
		if done[id] {
			out = append(out, id)
		}
	}
	return out, err
}

func (s LocalStore) Latest(ctx context.Context) (int64, bool, error) {
	c, err := s.Completed(ctx)
	if err != nil || len(c) == 0 {
		return 0, false, err
	}
	return c[len(c)-1], true, nil
}

func (s LocalStore) Highest(context.Context) (int64, error) {
	ids, _, err := s.ids()
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	return ids[len(ids)-1], nil
}

func (s LocalStore) Retain(ctx context.Context, keep int) error {
	c, err := s.Completed(ctx)
	if err != nil {
		return err
	}
	if keep < 1 {
		keep = 1
	}
	if len(c) <= keep {
		return nil
	}
	oldest := c[len(c)-keep]
	ids, _, err := s.ids()
	if err != nil {
		return err
	}
	for _, id := range ids {
		if id < oldest {
			if err := os.RemoveAll(s.dir(id)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Resolve turns a RestoreFrom value ("latest" or a checkpoint ID) into the
// ID of a complete checkpoint in store.
func Resolve(ctx context.Context, store Store, from string) (int64, error) {
	if from == "latest" {
		id, ok, err := store.Latest(ctx)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("checkpoint: no complete checkpoint to restore from")
		}
		return id, nil
	}
	id, err := strconv.ParseInt(from, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("checkpoint: restore from %q: want a checkpoint ID or \"latest\"", from)
	}
	c, err := store.Completed(ctx)
	if err != nil {
		return 0, err
	}
	for _, x := range c {
		if x == id {
			return id, nil
		}
	}
	return 0, fmt.Errorf("checkpoint: checkpoint %d is not complete (complete: %v)", id, c)
}
