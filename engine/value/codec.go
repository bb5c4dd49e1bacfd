package value

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// The binary encoding: one tag byte, then the payload.
//
//	nil, false, true: tag only
//	int:    zig-zag varint       uint: uvarint        double: 8 bytes little endian
//	string, bytes: uvarint length + bytes
//	list:   uvarint count + values
//	map:    uvarint count + (uvarint key length, key bytes, value) sorted by key
//
// Map keys are sorted so that equal values always encode to equal bytes,
// which lets an encoded key serve as the key's identity (KeyID).
//
// Decoding is strict: it accepts only the canonical bytes Append produces
// (minimal varints, map keys strictly ascending, so no duplicates). Every
// byte string that decodes therefore re-encodes to itself, and a KeyID read
// back by DecodeRecord is byte-equal to KeyID of the same key. Without that,
// a damaged or hand-made file could carry a second spelling of a key, which
// would split the key's group in hash partitioning, keyed state and sorting.
const (
	tagNil byte = iota
	tagFalse
	tagTrue
	tagInt
	tagUint
	tagDouble
	tagString
	tagBytes
	tagList
	tagMap
)

// maxDepth bounds nesting on decode so hostile input cannot exhaust the stack.
const maxDepth = 100

// maxPrealloc caps how many list elements or map entries decode reserves
// up front from a count it has not verified yet. A count is only checked
// against the bytes that remain, and nested containers share those bytes, so
// trusting it at every level would let a small hostile input reserve memory
// many times its size; beyond the cap the container grows as it is filled.
const maxPrealloc = 1024

// ErrCorrupt is returned for bytes that are not a valid encoding.
var ErrCorrupt = errors.New("value: corrupt encoding")

// Append appends the encoding of v to b.
func Append(b []byte, v any) []byte { return (*Encoder)(nil).append(b, v, 0) }

// Encoder encodes like Append and AppendRecord, remembering the sorted
// field names of the maps it encodes. Records of a stream have the same
// fields, and a map whose field names are those remembered is written by
// looking its fields up in that order, without iterating it (a Go map
// iteration costs more than a handful of lookups) and without sorting.
// The bytes are the same canonical encoding. The zero Encoder is ready to
// use; a nil *Encoder encodes without remembering. It is not safe for
// concurrent use.
type Encoder struct {
	// shapes[depth][n] is the sorted field names of the last map of n
	// entries encoded at that nesting depth. A map's entries are encoded
	// one level deeper, so encoding them never touches the slot of the
	// map being written.
	shapes [maxShapeDepth][maxShapeLen + 1][]string
}

const (
	maxShapeDepth = 4
	maxShapeLen   = 16
)

// Append is the package's Append.
func (e *Encoder) Append(b []byte, v any) []byte { return e.append(b, v, 0) }

// AppendRecord is the package's AppendRecord.
func (e *Encoder) AppendRecord(b []byte, r *Record) []byte {
	b = binary.AppendUvarint(b, uint64(len(r.KeyID)))
	b = append(b, r.KeyID...)
	b = binary.AppendVarint(b, r.Ts)
	return e.append(b, r.Value, 0)
}

func (e *Encoder) append(b []byte, v any, depth int) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, tagNil)
	case bool:
		if x {
			return append(b, tagTrue)
		}
		return append(b, tagFalse)
	case int64:
		b = append(b, tagInt)
		return binary.AppendVarint(b, x)
	case uint64:
		b = append(b, tagUint)
		return binary.AppendUvarint(b, x)
	case float64:
		b = append(b, tagDouble)
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	case string:
		b = append(b, tagString)
		b = binary.AppendUvarint(b, uint64(len(x)))
		return append(b, x...)
	case []byte:
		b = append(b, tagBytes)
		b = binary.AppendUvarint(b, uint64(len(x)))
		return append(b, x...)
	case []any:
		b = append(b, tagList)
		b = binary.AppendUvarint(b, uint64(len(x)))
		for _, el := range x {
			b = e.append(b, el, depth+1)
		}
		return b
	case map[string]any:
		b = append(b, tagMap)
		b = binary.AppendUvarint(b, uint64(len(x)))
		var slot *[]string
		if e != nil && depth < maxShapeDepth && len(x) <= maxShapeLen {
			slot = &e.shapes[depth][len(x)]
			if keys := *slot; len(keys) == len(x) && len(keys) > 0 {
				// The same number of entries and every remembered name
				// present: the same names.
				mark := len(b)
				hit := true
				for _, k := range keys {
					el, ok := x[k]
					if !ok {
						hit = false
						break
					}
					b = binary.AppendUvarint(b, uint64(len(k)))
					b = append(b, k...)
					b = e.append(b, el, depth+1)
				}
				if hit {
					return b
				}
				b = b[:mark]
			}
		}
		if len(x) == 1 && slot == nil {
			for k, el := range x {
				b = binary.AppendUvarint(b, uint64(len(k)))
				b = append(b, k...)
				b = e.append(b, el, depth+1)
			}
			return b
		}
		// One pass over the map collects the entries, so writing them in
		// key order needs no second lookup per key; records have few
		// fields, and an insertion sort of a handful is cheapest.
		var stack [16]mapEntry
		ents := stack[:0]
		for k, el := range x {
			ents = append(ents, mapEntry{k, el})
		}
		if len(ents) <= len(stack) {
			for i := 1; i < len(ents); i++ {
				for j := i; j > 0 && ents[j].k < ents[j-1].k; j-- {
					ents[j], ents[j-1] = ents[j-1], ents[j]
				}
			}
		} else {
			slices.SortFunc(ents, func(a, b mapEntry) int { return strings.Compare(a.k, b.k) })
		}
		for i := range ents {
			b = binary.AppendUvarint(b, uint64(len(ents[i].k)))
			b = append(b, ents[i].k...)
			b = e.append(b, ents[i].v, depth+1)
		}
		if slot != nil {
			keys := (*slot)[:0]
			for i := range ents {
				keys = append(keys, ents[i].k)
			}
			*slot = keys
		}
		return b
	case *Row:
		// Fields are in sorted order: the encoding of the equal map.
		b = append(b, tagMap)
		b = binary.AppendUvarint(b, uint64(len(x.vals)))
		for i, el := range x.vals {
			k := x.schema.names[i]
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
			b = e.append(b, el, depth+1)
		}
		return b
	default:
		return e.append(b, Normalize(v), depth)
	}
}

// mapEntry is one entry of a map being encoded.
type mapEntry struct {
	k string
	v any
}

// Decode decodes one value from the front of b and returns the rest.
// It never panics: malformed input gives ErrCorrupt.
func Decode(b []byte) (any, []byte, error) {
	return decode(b, 0, nil)
}

// keyCache interns the map keys a decoder reads: records of a stream
// repeat the same field names, and interning saves allocating each of
// them for every record. It is a small direct-mapped table; a collision
// just costs an allocation.
type keyCache struct {
	tab [256]string
	// vals, if set, interns values too (a Decoder's).
	vals *valueCache
}

// valueCache interns decoded integers and short strings as the boxed
// values records hold: a stream repeats many of its values (timestamps of
// the same millisecond, a category, a hot ID, a channel name), and boxing
// a decoded integer allocates, a string twice (its bytes, its box). The
// values are immutable, so records may share them. Direct-mapped: a
// collision just costs the allocation.
type valueCache struct {
	ints [256]struct {
		v   int64
		box any
	}
	strs [256]any
}

const maxCachedString = 32

func (c *keyCache) int(v int64) any {
	if c == nil || c.vals == nil || uint64(v) < 256 { // Go boxes small values without allocating
		return v
	}
	e := &c.vals.ints[(uint64(v)*0x9E3779B97F4A7C15)>>56]
	if e.box == nil || e.v != v {
		e.v, e.box = v, v
	}
	return e.box
}

func (c *keyCache) str(b []byte) any {
	if c == nil || c.vals == nil || len(b) > maxCachedString {
		return string(b)
	}
	h := fnv1a(b)
	e := &c.vals.strs[(h^h>>8)&255]
	if s, ok := (*e).(string); !ok || s != string(b) {
		*e = string(b)
	}
	return *e
}

const maxCachedKey = 32

// fnv1a is the 32-bit FNV-1a hash of b, which picks the slot of the
// direct-mapped caches.
func fnv1a(b []byte) uint32 {
	h := uint32(2166136261)
	for _, x := range b {
		h ^= uint32(x)
		h *= 16777619
	}
	return h
}

func (c *keyCache) key(b []byte) string {
	if c == nil || len(b) > maxCachedKey {
		return string(b)
	}
	h := fnv1a(b)
	slot := &c.tab[(h^h>>8)&255]
	if *slot != string(b) {
		*slot = string(b)
	}
	return *slot
}

// Decoder decodes record bodies like DecodeRecord, interning map keys,
// integers and short strings across the records it decodes (valueCache),
// and reusing the Key and KeyID of a record key it decoded recently: a keyed stream repeats its hot keys, and each
// fresh decode of one costs the KeyID string and the key value (both
// immutable, so records may share them). It is not safe for concurrent use.
type Decoder struct {
	keys    keyCache
	recKeys recordKeyCache
	vals    valueCache
}

// DecodeRecord is the package's DecodeRecord.
func (d *Decoder) DecodeRecord(b []byte, r *Record) error {
	d.keys.vals = &d.vals
	return decodeRecord(b, r, &d.keys, &d.recKeys)
}

// recordKeyCache is a small direct-mapped table of record keys by KeyID.
// A miss (or a collision) just decodes the key.
type recordKeyCache struct {
	tab [64]struct {
		id  string
		key any
	}
}

const maxCachedRecordKey = 64

// lookup returns the cached KeyID equal to kid and its key, or the slot
// to fill after decoding it.
func (c *recordKeyCache) lookup(kid []byte) (id string, key any, slot int) {
	h := fnv1a(kid)
	slot = int((h ^ h>>6) & uint32(len(c.tab)-1))
	e := &c.tab[slot]
	if e.id != "" && e.id == string(kid) {
		return e.id, e.key, slot
	}
	return "", nil, slot
}

func decode(b []byte, depth int, kc *keyCache) (any, []byte, error) {
	if len(b) == 0 || depth > maxDepth {
		return nil, nil, ErrCorrupt
	}
	tag, b := b[0], b[1:]
	switch tag {
	case tagNil:
		return nil, b, nil
	case tagFalse:
		return false, b, nil
	case tagTrue:
		return true, b, nil
	case tagInt:
		v, n := binary.Varint(b)
		if n <= 0 || !minimal(b, n) {
			return nil, nil, ErrCorrupt
		}
		return kc.int(v), b[n:], nil
	case tagUint:
		v, n := binary.Uvarint(b)
		if n <= 0 || !minimal(b, n) {
			return nil, nil, ErrCorrupt
		}
		return v, b[n:], nil
	case tagDouble:
		if len(b) < 8 {
			return nil, nil, ErrCorrupt
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:], nil
	case tagString, tagBytes:
		s, rest, err := decodeBytes(b)
		if err != nil {
			return nil, nil, err
		}
		if tag == tagString {
			return kc.str(s), rest, nil
		}
		return append([]byte{}, s...), rest, nil
	case tagList:
		n, k := binary.Uvarint(b)
		if k <= 0 || !minimal(b, k) || n > uint64(len(b)-k) { // every element takes at least one byte
			return nil, nil, ErrCorrupt
		}
		b = b[k:]
		out := make([]any, 0, min(n, maxPrealloc))
		for i := uint64(0); i < n; i++ {
			e, rest, err := decode(b, depth+1, kc)
			if err != nil {
				return nil, nil, err
			}
			out, b = append(out, e), rest
		}
		return out, b, nil
	case tagMap:
		n, k := binary.Uvarint(b)
		if k <= 0 || !minimal(b, k) || n > uint64(len(b)-k)/2 { // every entry takes at least two bytes
			return nil, nil, ErrCorrupt
		}
		b = b[k:]
		out := make(map[string]any, min(n, maxPrealloc))
		var prev []byte
		for i := uint64(0); i < n; i++ {
			key, rest, err := decodeBytes(b)
			if err != nil {
				return nil, nil, err
			}
			// Append writes keys in ascending order; anything else (including
			// a repeated key) is not a canonical encoding.
			if i > 0 && string(key) <= string(prev) {
				return nil, nil, fmt.Errorf("%w: map keys out of order", ErrCorrupt)
			}
			prev = key
			var v any
			v, b, err = decode(rest, depth+1, kc)
			if err != nil {
				return nil, nil, err
			}
			out[kc.key(key)] = v
		}
		return out, b, nil
	}
	return nil, nil, fmt.Errorf("%w: unknown tag %d", ErrCorrupt, tag)
}

func decodeBytes(b []byte) ([]byte, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || !minimal(b, k) || n > uint64(len(b)-k) {
		return nil, nil, ErrCorrupt
	}
	end := k + int(n)
	return b[k:end], b[end:], nil
}

// minimal reports whether the n-byte varint at the front of b is in its
// shortest form. binary.Uvarint also accepts padded forms such as 0x80 0x00
// for 0; only the shortest one is what AppendUvarint writes, and a longer
// final byte of zero is the only way to pad.
func minimal(b []byte, n int) bool {
	return n == 1 || b[n-1] != 0
}

// AppendRecord appends a record body: key ID, timestamp and value. The key
// value itself is not stored; it is decoded from the key ID.
func AppendRecord(b []byte, r *Record) []byte {
	return (*Encoder)(nil).AppendRecord(b, r)
}

// RecordKeyTs reads the key ID and timestamp at the front of a record body
// written by AppendRecord, without decoding the value. keyID aliases body.
func RecordKeyTs(body []byte) (keyID []byte, ts int64, err error) {
	kid, rest, err := decodeBytes(body)
	if err != nil {
		return nil, 0, err
	}
	ts, n := binary.Varint(rest)
	if n <= 0 || !minimal(rest, n) {
		return nil, 0, ErrCorrupt
	}
	return kid, ts, nil
}

// DecodeRecord decodes a record body written by AppendRecord.
func DecodeRecord(b []byte, r *Record) error {
	return decodeRecord(b, r, nil, nil)
}

func decodeRecord(b []byte, r *Record, kc *keyCache, rk *recordKeyCache) error {
	kid, rest, err := decodeBytes(b)
	if err != nil {
		return err
	}
	ts, n := binary.Varint(rest)
	if n <= 0 || !minimal(rest, n) {
		return ErrCorrupt
	}
	v, rest, err := decode(rest[n:], 0, kc)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(rest))
	}
	r.Value, r.Ts = v, ts
	if len(kid) == 0 {
		r.Key, r.KeyID = nil, ""
		return nil
	}
	if r.KeyID == string(kid) && r.KeyID != "" {
		// The same key as the record decoded into r before (sorted input
		// has runs of one key): keep its Key and KeyID, which are
		// immutable, instead of decoding and allocating them again.
		return nil
	}
	slot := -1
	if rk != nil && len(kid) <= maxCachedRecordKey {
		var id string
		var key any
		if id, key, slot = rk.lookup(kid); id != "" {
			r.Key, r.KeyID = key, id
			return nil
		}
	}
	k, krest, err := Decode(kid)
	if err != nil || len(krest) != 0 {
		return ErrCorrupt
	}
	r.Key, r.KeyID = k, string(kid)
	if slot >= 0 {
		rk.tab[slot].id, rk.tab[slot].key = r.KeyID, k
	}
	return nil
}
