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
func Append(b []byte, v any) []byte {
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
		for _, e := range x {
			b = Append(b, e)
		}
		return b
	case map[string]any:
		b = append(b, tagMap)
		b = binary.AppendUvarint(b, uint64(len(x)))
		if len(x) == 1 {
			for k, e := range x {
				b = binary.AppendUvarint(b, uint64(len(k)))
				b = append(b, k...)
				b = Append(b, e)
			}
			return b
		}
		// One pass over the map collects the entries, so writing them in
		// key order needs no second lookup per key; records have few
		// fields, and an insertion sort of a handful is cheapest.
		var stack [16]mapEntry
		ents := stack[:0]
		for k, e := range x {
			ents = append(ents, mapEntry{k, e})
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
			b = Append(b, ents[i].v)
		}
		return b
	default:
		return Append(b, Normalize(v))
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
}

const maxCachedKey = 32

func (c *keyCache) key(b []byte) string {
	if c == nil || len(b) > maxCachedKey {
		return string(b)
	}
	h := uint32(2166136261)
	for _, x := range b {
		h ^= uint32(x)
		h *= 16777619
	}
	slot := &c.tab[(h^h>>8)&255]
	if *slot != string(b) {
		*slot = string(b)
	}
	return *slot
}

// Decoder decodes record bodies like DecodeRecord, interning map keys
// across the records it decodes, and reusing the Key and KeyID of a record
// key it decoded recently: a keyed stream repeats its hot keys, and each
// fresh decode of one costs the KeyID string and the key value (both
// immutable, so records may share them). It is not safe for concurrent use.
type Decoder struct {
	keys    keyCache
	recKeys recordKeyCache
}

// DecodeRecord is the package's DecodeRecord.
func (d *Decoder) DecodeRecord(b []byte, r *Record) error {
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
	h := uint32(2166136261)
	for _, x := range kid {
		h ^= uint32(x)
		h *= 16777619
	}
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
		return v, b[n:], nil
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
			return string(s), rest, nil
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
	b = binary.AppendUvarint(b, uint64(len(r.KeyID)))
	b = append(b, r.KeyID...)
	b = binary.AppendVarint(b, r.Ts)
	return Append(b, r.Value)
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
