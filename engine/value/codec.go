package value

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unsafe"
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
// It never panics: malformed input gives ErrCorrupt. Maps decode into
// *Row when UseRows is on (read per call: Decode has no set-up), into
// map[string]any when it is off.
func Decode(b []byte) (any, []byte, error) {
	return decode(b, 0, plainCtx())
}

// decodeCtx is what decoding carries down a value: the caches of a
// Decoder or RecordReader (nil ones are not used) and whether maps become
// rows. A nil *decodeCtx decodes maps into maps, without caches.
type decodeCtx struct {
	keys    *keyCache
	vals    *valueCache
	schemas *schemaCache
	rows    bool
}

// rowsCtx decodes into rows without caches. It has nothing to write, so
// concurrent decodes share it.
var rowsCtx = decodeCtx{rows: true}

// plainCtx is the context of the package's Decode and DecodeRecord.
func plainCtx() *decodeCtx {
	if UseRows {
		return &rowsCtx
	}
	return nil
}

// keyCache interns the map keys a decoder reads: records of a stream
// repeat the same field names, and interning saves allocating each of
// them for every record. It is a small direct-mapped table; a collision
// just costs an allocation.
type keyCache struct {
	tab [256]string
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

// schemaCache finds the schema of a map decoded into a row without
// building its field names. last[depth][n] is the schema of the last map
// of n fields decoded at that nesting depth: the next record of a stream
// most likely has the same fields, and the keys are compared with its
// names as they are read, so a hit costs no string and no lookup. byNames
// is a direct-mapped table by a hash of the names, for a map whose fields
// are not the last ones (a stream of several shapes of one size, maps too
// deep or too wide for last): a hit there costs no string either.
//
// seen holds, per byNames slot, the hash of the last names decoded there
// that the schema table did not hold: once the table (row.go) is half
// full, such names are interned only when a decoder sees them a second
// time. Record shapes repeat at once; the key sets of maps whose keys are
// data (per-user counts) mostly do not, and interning each of them would
// fill the table with names no row shares, after which no new shape could
// be interned.
type schemaCache struct {
	last    [maxShapeDepth][maxShapeLen + 1]*Schema
	byNames [64]*Schema
	seen    [64]uint32
}

const maxCachedString = 32

func (c *decodeCtx) int(v int64) any {
	if c == nil || c.vals == nil || uint64(v) < 256 { // Go boxes small values without allocating
		return v
	}
	e := &c.vals.ints[(uint64(v)*0x9E3779B97F4A7C15)>>56]
	if e.box == nil || e.v != v {
		e.v, e.box = v, v
	}
	return e.box
}

func (c *decodeCtx) str(b []byte) any {
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

func (c *decodeCtx) key(b []byte) string {
	if c == nil || c.keys == nil || len(b) > maxCachedKey {
		return string(b)
	}
	h := fnv1a(b)
	slot := &c.keys.tab[(h^h>>8)&255]
	if *slot != string(b) {
		*slot = string(b)
	}
	return *slot
}

// Decoder decodes record bodies like DecodeRecord, interning map keys,
// integers and short strings across the records it decodes (valueCache),
// and reusing the Key and KeyID of a record key it decoded recently: a
// keyed stream repeats its hot keys, and each fresh decode of one costs
// the KeyID string and the key value (both immutable, so records may share
// them). When UseRows is on as it is first used, it decodes maps into rows,
// finding their schemas through a schemaCache. The zero Decoder is ready
// to use; it is not safe for concurrent use and must not be copied once
// used.
type Decoder struct {
	ctx     decodeCtx // set up by the first decode
	keys    keyCache
	vals    valueCache
	schemas schemaCache
	recKeys recordKeyCache
}

// init sets the Decoder up on its first use, when it reads UseRows: a
// Decoder keeps the form it started with, so one stream never mixes them.
func (d *Decoder) init() *decodeCtx {
	if d.ctx.keys == nil {
		d.ctx = decodeCtx{keys: &d.keys, vals: &d.vals, schemas: &d.schemas, rows: UseRows}
		d.recKeys.tab = make([]recordKey, decoderRecordKeys)
	}
	return &d.ctx
}

// DecodeRecord is the package's DecodeRecord.
func (d *Decoder) DecodeRecord(b []byte, r *Record) error {
	return decodeRecord(b, r, d.init(), &d.recKeys)
}

// Decode is the package's Decode, with the Decoder's caches.
func (d *Decoder) Decode(b []byte) (any, []byte, error) {
	return decode(b, 0, d.init())
}

// recordKeyCache is a direct-mapped table of record keys by KeyID. A miss
// (or a collision) just decodes the key. Its length is a power of two;
// empty, it caches nothing.
type recordKeyCache struct {
	tab []recordKey
}

// recordKey is a cached record key. A short KeyID's bytes are kept in the
// slot too, so that comparing them reads no other memory (the ID string
// lives elsewhere on the heap, and the keys of a set mostly have the same
// length).
type recordKey struct {
	id    string
	key   any
	n     uint8 // len(id) when short holds it, else 0
	short [15]byte
}

const maxCachedRecordKey = 64

// The sizes of the record key caches: a Decoder's holds the keys in
// flight on an exchange stream (records of many keys interleave, and a
// shared KeyID string also lets keyed state find the key's entry by
// address); a RecordReader's reads sorted runs, whose keys come in runs.
const (
	decoderRecordKeys = 1024
	readerRecordKeys  = 64
)

// lookup returns the cached KeyID equal to kid and its key, or the slot
// to fill after decoding it.
func (c *recordKeyCache) lookup(kid []byte) (id string, key any, slot int) {
	h := fnv1a(kid)
	slot = int((h ^ h>>10) & uint32(len(c.tab)-1))
	e := &c.tab[slot]
	if len(kid) <= len(e.short) {
		if int(e.n) == len(kid) && string(e.short[:len(kid)]) == string(kid) {
			return e.id, e.key, slot
		}
	} else if e.id == string(kid) {
		return e.id, e.key, slot
	}
	return "", nil, slot
}

// set fills a slot lookup returned.
func (c *recordKeyCache) set(slot int, id string, key any) {
	e := &c.tab[slot]
	e.id, e.key, e.n = id, key, 0
	if len(id) <= len(e.short) {
		e.n = uint8(copy(e.short[:], id))
	}
}

func decode(b []byte, depth int, c *decodeCtx) (any, []byte, error) {
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
		return c.int(v), b[n:], nil
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
			return c.str(s), rest, nil
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
			e, rest, err := decode(b, depth+1, c)
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
		if c != nil && c.rows && n <= maxRowFields {
			return c.decodeRow(b, int(n), depth)
		}
		return c.decodeMap(b, int(n), depth)
	}
	return nil, nil, fmt.Errorf("%w: unknown tag %d", ErrCorrupt, tag)
}

// maxRowFields is the widest map decoded into a row. A map this wide is
// more likely keyed by data (counts per user kept in state) than a record,
// and interning the schema of every such key set would keep them all.
const maxRowFields = 64

// decodeMap decodes the n entries of a map (after its count) into a map.
func (c *decodeCtx) decodeMap(b []byte, n, depth int) (any, []byte, error) {
	out := make(map[string]any, min(n, maxPrealloc))
	var prev []byte
	for i := 0; i < n; i++ {
		key, rest, err := decodeBytes(b)
		if err != nil {
			return nil, nil, err
		}
		// Append writes keys in ascending order; anything else (including
		// a repeated key) is not a canonical encoding.
		if i > 0 && string(key) <= string(prev) {
			return nil, nil, errKeyOrder
		}
		prev = key
		var v any
		v, b, err = decode(rest, depth+1, c)
		if err != nil {
			return nil, nil, err
		}
		out[c.key(key)] = v
	}
	return out, b, nil
}

var errKeyOrder = fmt.Errorf("%w: map keys out of order", ErrCorrupt)

// decodeRow decodes the n entries of a map (after its count) into a row.
// When the last map of n fields at this depth had the same field names,
// the row is built with one allocation and no strings: each key is
// compared with the remembered schema's name as it is read, and equal
// names are strictly ascending, as a canonical encoding's must be.
func (c *decodeCtx) decodeRow(b []byte, n, depth int) (any, []byte, error) {
	var last **Schema
	if c.schemas != nil && depth < maxShapeDepth && n <= maxShapeLen {
		last = &c.schemas.last[depth][n]
		if s := *last; s != nil {
			r := NewRow(s)
			for i, name := range s.names {
				key, rest, err := decodeBytes(b)
				if err != nil {
					return nil, nil, err
				}
				if string(key) != name {
					// Other fields: go on from this one the general way,
					// into r (it has n slots).
					return c.decodeRowFields(b, n, depth, r, i, last)
				}
				if r.vals[i], b, err = decode(rest, depth+1, c); err != nil {
					return nil, nil, err
				}
			}
			return r, b, nil
		}
	}
	return c.decodeRowFields(b, n, depth, nil, 0, last)
}

// decodeRowFields decodes the fields of a map from field from on, checking
// that keys ascend strictly, and finds the schema of their names. r, if
// not nil, is a row of n slots whose first from fields are decoded and are
// named as in r's schema; it gets the schema found. last, if not nil, is
// the slot remembering the schema of maps of this depth and size.
func (c *decodeCtx) decodeRowFields(b []byte, n, depth int, r *Row, from int, last **Schema) (any, []byte, error) {
	var kstack [maxShapeLen][]byte
	var vstack [maxShapeLen]any
	keys := kstack[:0]
	if n > maxShapeLen {
		keys = make([][]byte, 0, min(n, maxPrealloc))
	}
	var vals []any
	switch {
	case r != nil:
		// Appending fills r's slots in place: it has n of them.
		vals = r.vals[:from]
		for _, name := range r.schema.names[:from] {
			keys = append(keys, unsafe.Slice(unsafe.StringData(name), len(name))) // read only
		}
	case n <= maxShapeLen:
		vals = vstack[:0]
	default:
		vals = make([]any, 0, min(n, maxPrealloc))
	}
	for i := from; i < n; i++ {
		key, rest, err := decodeBytes(b)
		if err != nil {
			return nil, nil, err
		}
		if i > 0 && string(key) <= string(keys[i-1]) {
			return nil, nil, errKeyOrder
		}
		var v any
		if v, b, err = decode(rest, depth+1, c); err != nil {
			return nil, nil, err
		}
		keys, vals = append(keys, key), append(vals, v)
	}
	s := c.schemaOf(keys)
	if s == nil {
		// A shape the full schema table does not hold: the map.
		m := make(map[string]any, n)
		for i, k := range keys {
			m[c.key(k)] = vals[i]
		}
		return m, b, nil
	}
	if last != nil {
		*last = s
	}
	if r == nil {
		r = NewRow(s)
		copy(r.vals, vals)
	} else {
		r.schema = s
	}
	return r, b, nil
}

// schemaOf returns the interned schema of sorted, distinct names: from the
// context's table when it holds it, else interned (allocating the names);
// nil when the schema table is full and does not hold them.
func (c *decodeCtx) schemaOf(keys [][]byte) *Schema {
	var slot **Schema
	var seen *uint32
	h := uint32(2166136261)
	if c.schemas != nil {
		for _, k := range keys {
			h = (h ^ uint32(len(k))) * 16777619
			for _, x := range k {
				h = (h ^ uint32(x)) * 16777619
			}
		}
		i := (h ^ h>>8) & uint32(len(c.schemas.byNames)-1)
		slot, seen = &c.schemas.byNames[i], &c.schemas.seen[i]
		if s := *slot; s != nil && sameNames(s, keys) {
			return s
		}
	}
	var nstack [maxShapeLen]string
	names := nstack[:0]
	for _, k := range keys {
		names = append(names, c.key(k))
	}
	var s *Schema
	key := schemaKey(names)
	if x, ok := schemas.Load(key); ok {
		s = x.(*Schema)
	} else if interned.Load() >= maxInterned {
		// The table is full (row.go): internNew would build an
		// unshared schema for every map of a new shape, names and
		// index included. Such maps, as data-keyed ones, stay maps.
		return nil
	} else if seen != nil && *seen != h && interned.Load() >= maxInterned/2 {
		// Names seen for the first time stay a map (see schemaCache).
		*seen = h
		return nil
	} else {
		s = internNew(key, slices.Clone(names))
	}
	if slot != nil {
		*slot = s
	}
	return s
}

func sameNames(s *Schema, keys [][]byte) bool {
	if len(s.names) != len(keys) {
		return false
	}
	for i, k := range keys {
		if s.names[i] != string(k) {
			return false
		}
	}
	return true
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
	return decodeRecord(b, r, plainCtx(), nil)
}

func decodeRecord(b []byte, r *Record, c *decodeCtx, rk *recordKeyCache) error {
	kid, rest, err := decodeBytes(b)
	if err != nil {
		return err
	}
	ts, n := binary.Varint(rest)
	if n <= 0 || !minimal(rest, n) {
		return ErrCorrupt
	}
	v, rest, err := decode(rest[n:], 0, c)
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
	if rk != nil && len(rk.tab) > 0 && len(kid) <= maxCachedRecordKey {
		var id string
		var key any
		if id, key, slot = rk.lookup(kid); id != "" {
			r.Key, r.KeyID = key, id
			return nil
		}
	}
	// A key is decoded in the record's form, without the caches: keys
	// decode once per distinct key, and their maps would only take the
	// places of the values' schemas.
	kc := (*decodeCtx)(nil)
	if c != nil && c.rows {
		kc = &rowsCtx
	}
	k, krest, err := decode(kid, 0, kc)
	if err != nil || len(krest) != 0 {
		return ErrCorrupt
	}
	r.Key, r.KeyID = k, string(kid)
	if slot >= 0 {
		rk.set(slot, r.KeyID, k)
	}
	return nil
}
