package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"reflect"
)

// CheckStore exercises the Store contract on an empty store s and returns
// the first violation: every backend (LocalStore, the worker's S3 store)
// runs it in its tests, so the package's functions behave the same on all.
func CheckStore(ctx context.Context, s Store) error {
	if _, err := s.Get(ctx, "chk-1/x"); !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("Get of a missing object: got %v, want ErrNotFound", err)
	}
	if l, err := s.List(ctx, "chk-"); err != nil || len(l) != 0 {
		return fmt.Errorf("List of an empty store: %v, %v", l, err)
	}
	put := map[string]string{
		"chk-1/source/src/0":         "a",
		"chk-1/keyed/sum/0-of-2":     "b",
		"chk-1/keyed/sum/1-of-2":     "c",
		"chk-1/_COMPLETED":           "{}",
		"chk-12/keyed/sum/0-of-1":    "d",
		"chk-2/sink/out/0":           "",
		"chk-2/keyed/summary/0-of-1": "e",
	}
	for n, v := range put {
		if err := s.Put(ctx, n, []byte(v)); err != nil {
			return fmt.Errorf("Put %s: %w", n, err)
		}
	}
	if err := s.Put(ctx, "chk-1/source/src/0", []byte("a2")); err != nil {
		return fmt.Errorf("Put over an object: %w", err)
	}
	if b, err := s.Get(ctx, "chk-1/source/src/0"); err != nil || string(b) != "a2" {
		return fmt.Errorf("Get after overwrite: %q, %v", b, err)
	}
	if b, err := s.Get(ctx, "chk-2/sink/out/0"); err != nil || len(b) != 0 {
		return fmt.Errorf("Get of an empty object: %q, %v", b, err)
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"chk-1/keyed/sum/", []string{"chk-1/keyed/sum/0-of-2", "chk-1/keyed/sum/1-of-2"}},
		{"chk-2/keyed/sum", []string{"chk-2/keyed/summary/0-of-1"}},
		{"chk-1", []string{"chk-1/_COMPLETED", "chk-1/keyed/sum/0-of-2", "chk-1/keyed/sum/1-of-2", "chk-1/source/src/0",
			"chk-12/keyed/sum/0-of-1"}},
		{"nothing/", nil},
	} {
		got, err := s.List(ctx, c.prefix)
		if err != nil {
			return fmt.Errorf("List %q: %w", c.prefix, err)
		}
		if len(got) != 0 || len(c.want) != 0 {
			if !reflect.DeepEqual(got, c.want) {
				return fmt.Errorf("List %q = %q, want %q (sorted, full names, any depth)", c.prefix, got, c.want)
			}
		}
	}
	sub := Sub(s, "chk-1/")
	if got, err := sub.List(ctx, "keyed/"); err != nil || !reflect.DeepEqual(got, []string{"keyed/sum/0-of-2", "keyed/sum/1-of-2"}) {
		return fmt.Errorf("Sub(chk-1/).List(keyed/) = %q, %v", got, err)
	}
	if done, err := Completed(ctx, s); err != nil || !reflect.DeepEqual(done, []int64{1}) {
		return fmt.Errorf("Completed = %v, %v; want [1]", done, err)
	}
	if h, err := Highest(ctx, s); err != nil || h != 12 {
		return fmt.Errorf("Highest = %d, %v; want 12", h, err)
	}
	if err := s.Delete(ctx, "chk-1/"); err != nil {
		return fmt.Errorf("Delete chk-1/: %w", err)
	}
	if got, err := s.List(ctx, "chk-1"); err != nil || !reflect.DeepEqual(got, []string{"chk-12/keyed/sum/0-of-1"}) {
		return fmt.Errorf("after Delete chk-1/, List chk-1 = %q, %v (Delete must not touch chk-12/)", got, err)
	}
	if err := s.Delete(ctx, "nothing/"); err != nil {
		return fmt.Errorf("Delete of a missing prefix: %w", err)
	}
	return nil
}
