package value

// A direct JSON parser for FromJSON. encoding/json's Decoder (with
// UseNumber) followed by Normalize was most of the CPU of a source reading
// JSON records (Kafka values, jsonl files): a Decoder per value, reflection,
// json.Number strings and a second pass over the result. This parser builds
// the engine's values in one pass; a JSONDecoder builds objects as rows
// (when UseRows is on) without going through a map. No source uses one
// yet: FromJSON keeps objects as maps (see fromJSON).
//
// What it accepts and returns is exactly what encoding/json + Normalize
// did (json_test.go's FuzzFromJSON compares the two on any input):
//   - strings: escapes as encoding/json decodes them (a \u surrogate that is
//     not half of a valid pair becomes U+FFFD, and so does each byte of
//     invalid UTF-8);
//   - numbers: int64 if the literal parses as one, else uint64, else float64
//     (strconv.ParseFloat, out of range giving ±Inf), so "1.0" and "1e3" are
//     floats and "-0" is int64 0;
//   - arrays: []any; objects: map[string]any, or *Row when rows are on
//     (but for objects of more than maxRowFields distinct keys, and new
//     shapes the schema table has no room for, as in the binary decoder);
//     a repeated key keeps its last value, as encoding/json does;
//   - nesting deeper than 10000 arrays and objects is an error, as in
//     encoding/json (the parser recurses; 10000 frames are a few MB of
//     goroutine stack at most, and bounded).
//
// One difference: anything but whitespace after the value is an error. The
// Decoder-based FromJSON took a value followed by ']' or '}' (and anything
// after that) as the value alone, because Decoder.More reports false there.

import (
	"bytes"
	"slices"
	"strconv"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxJSONDepth is the deepest nesting of arrays and objects parsed, the
// limit encoding/json's scanner has.
const maxJSONDepth = 10000

// maxKeptScratch is the most member slots (and 16 times that string
// bytes) a parser keeps between values.
const maxKeptScratch = 4096

// jsonShapeWays is how many object shapes the parser remembers per nesting
// depth (found by their first key): a stream may interleave a few record
// kinds, such as Nexmark's persons, auctions and bids.
const jsonShapeWays = 4

// JSONError is a syntax error in JSON input: what was wrong and the byte
// offset in the input where it was found.
type JSONError struct {
	Offset int
	Msg    string
}

func (e *JSONError) Error() string {
	return e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

// JSONDecoder parses JSON values like FromJSON, keeping its caches (object
// shapes, map keys, short strings and integers) across the values it
// parses: a reader of a stream of JSON records should keep one. It reads
// UseRows when first used and keeps that form. The zero JSONDecoder is
// ready to use; it is not safe for concurrent use.
type JSONDecoder struct {
	p     *jsonParser
	rows  bool
	ready bool
}

// NewJSONDecoder returns a JSONDecoder that reads UseRows now: for a
// source that reads it when it is set up.
func NewJSONDecoder() *JSONDecoder {
	return &JSONDecoder{p: newJSONParser(), rows: UseRows, ready: true}
}

// Decode parses raw, one JSON value with optional whitespace around it.
// The result does not alias raw.
func (d *JSONDecoder) Decode(raw []byte) (any, error) {
	if !d.ready {
		d.p, d.rows, d.ready = newJSONParser(), UseRows, true
	}
	return d.p.parse(raw, d.rows)
}

// jsonParsers holds parsers for FromJSON, which has no state of its own: a
// stream parsed on one goroutine mostly gets the same parser back, and so
// its caches.
var jsonParsers sync.Pool

func fromJSON(raw []byte) (any, error) {
	p, _ := jsonParsers.Get().(*jsonParser)
	if p == nil {
		p = newJSONParser()
	}
	// Maps, rows or not: JSON objects are often keyed by data (a Kafka
	// payload's per-user counts), whose key sets would only fill the
	// schema table. A JSONDecoder, kept by a reader of records of one
	// shape, follows UseRows.
	v, err := p.parse(raw, false)
	jsonParsers.Put(p)
	return v, err
}

// jsonParser parses one value at a time.
type jsonParser struct {
	data []byte
	pos  int
	// escaped says whether the last str result is in buf (else it is a
	// slice of data).
	escaped bool
	buf     []byte

	ctx     decodeCtx
	keys    keyCache
	vals    valueCache
	schemas schemaCache
	shapes  [maxShapeDepth][jsonShapeWays]*jsonShape
	nextWay [maxShapeDepth]uint8

	// mkeys and mvals are the members of the objects and the elements of
	// the arrays being parsed, innermost last (a container's are cut off
	// when it is built). Scratch for finishObject: idx, skeys, svals.
	mkeys [][]byte
	mvals []any
	idx   []int
	skeys [][]byte
	svals []any
}

// A jsonShape is an object's keys in the order a stream's objects have
// them, and where each goes in the row of their schema: the next object
// with the same keys in the same order is built straight into a row,
// comparing each key with the remembered one and no string made.
type jsonShape struct {
	schema *Schema
	keys   []string // in input order; the schema's own strings
	perm   []int    // keys[i] is field perm[i] of schema
}

func newJSONParser() *jsonParser {
	p := &jsonParser{}
	p.ctx = decodeCtx{keys: &p.keys, vals: &p.vals, schemas: &p.schemas}
	return p
}

func (p *jsonParser) parse(raw []byte, rows bool) (any, error) {
	p.data, p.pos, p.ctx.rows = raw, 0, rows
	p.skipSpace()
	v, err := p.value(0)
	if err == nil {
		p.skipSpace()
		if p.pos < len(p.data) {
			err = &JSONError{Offset: p.pos, Msg: "trailing data after JSON value"}
		}
	}
	// Keep neither the input nor values of it past this call: the stacks
	// are cleared as they are cut back, so only what an error left on them
	// is still there.
	p.data = nil
	clear(p.mvals)
	clear(p.mkeys)
	p.mvals, p.mkeys = p.mvals[:0], p.mkeys[:0]
	if cap(p.mvals) > maxKeptScratch {
		// A huge array or object: do not keep its scratch for the next.
		p.mvals, p.mkeys, p.svals, p.skeys, p.idx = nil, nil, nil, nil, nil
	}
	if cap(p.buf) > maxKeptScratch*16 {
		p.buf = nil
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// fail is a syntax error at offset pos: the end of the input, or the byte
// there, met while expecting what.
func (p *jsonParser) fail(pos int, what string) error {
	if pos >= len(p.data) {
		return &JSONError{Offset: pos, Msg: "unexpected end of input " + what}
	}
	c := p.data[pos]
	var char string
	if c < utf8.RuneSelf {
		char = strconv.QuoteRune(rune(c))
	} else {
		char = "byte 0x" + strconv.FormatUint(uint64(c), 16)
	}
	return &JSONError{Offset: pos, Msg: "invalid character " + char + " " + what}
}

// value parses the value at p.pos, inside depth arrays and objects.
func (p *jsonParser) value(depth int) (any, error) {
	if p.pos >= len(p.data) {
		return nil, p.fail(p.pos, "looking for the beginning of a value")
	}
	switch c := p.data[p.pos]; c {
	case '{':
		return p.object(depth + 1)
	case '[':
		return p.array(depth + 1)
	case '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return p.ctx.str(s), nil
	case 't':
		return true, p.literal("true")
	case 'f':
		return false, p.literal("false")
	case 'n':
		return nil, p.literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return p.number()
		}
		return nil, p.fail(p.pos, "looking for the beginning of a value")
	}
}

func (p *jsonParser) literal(lit string) error {
	for i := 0; i < len(lit); i++ {
		if p.pos+i >= len(p.data) || p.data[p.pos+i] != lit[i] {
			return p.fail(p.pos+i, "in literal "+lit)
		}
	}
	p.pos += len(lit)
	return nil
}

// number parses a number literal: int64 if it is one, else uint64, else
// float64, as Normalize converts a json.Number.
func (p *jsonParser) number() (any, error) {
	data, start := p.data, p.pos
	i := start
	neg := data[i] == '-'
	if neg {
		i++
	}
	if i >= len(data) {
		return nil, p.fail(i, "in a number")
	}
	var u uint64
	digits := 0
	switch c := data[i]; {
	case c == '0':
		i++
		digits = 1
	case c >= '1' && c <= '9':
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			u = u*10 + uint64(data[i]-'0') // wraps past 19 digits: not used then
			i++
			digits++
		}
	default:
		return nil, p.fail(i, "in a number")
	}
	integer := true
	if i < len(data) && data[i] == '.' {
		integer = false
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			return nil, p.fail(i, "after a decimal point in a number")
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		integer = false
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			return nil, p.fail(i, "in the exponent of a number")
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	p.pos = i
	if integer && digits <= 18 { // fits an int64 (and is one for ParseInt)
		v := int64(u)
		if neg {
			v = -v
		}
		return p.ctx.int(v), nil
	}
	// strconv copies the text into any error it returns, and keeps none.
	s := unsafe.String(unsafe.SliceData(data[start:i]), i-start)
	// ParseInt and ParseUint take digits with a sign and nothing else: a
	// fraction or an exponent fails both (and their errors allocate).
	if integer {
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			return v, nil
		}
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			return v, nil
		}
	}
	f, _ := strconv.ParseFloat(s, 64) // json.Number.Float64; ±Inf when out of range
	return f, nil
}

// str parses the string at p.pos (its opening quote) and returns its
// decoded bytes: a slice of the input when it has no escape and is valid
// UTF-8, else of p.buf, valid until the next call (p.escaped says which).
func (p *jsonParser) str() ([]byte, error) {
	data := p.data
	start := p.pos + 1
	i := start
	for i < len(data) {
		c := data[i]
		if c == '"' {
			p.pos, p.escaped = i+1, false
			return data[start:i], nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	return p.strSlow(start, i)
}

// strSlow decodes a string into p.buf from i on, where it has an escape,
// invalid UTF-8, a control character or its end; data[start:i] is plain.
// It decodes as encoding/json's unquote does.
func (p *jsonParser) strSlow(start, i int) ([]byte, error) {
	data := p.data
	buf := append(p.buf[:0], data[start:i]...)
	defer func() { p.buf = buf[:0] }()
	for {
		if i >= len(data) {
			p.pos = i
			return nil, p.fail(i, "in a string")
		}
		c := data[i]
		switch {
		case c == '"':
			p.pos, p.escaped = i+1, true
			return buf, nil
		case c < 0x20:
			return nil, p.fail(i, "(a control character) in a string")
		case c == '\\':
			if i+1 >= len(data) {
				return nil, p.fail(i+1, "in a string escape")
			}
			switch e := data[i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				rr, bad := hex4(data, i+2)
				if bad >= 0 {
					return nil, p.fail(bad, "in a \\u escape")
				}
				i += 6
				if utf16.IsSurrogate(rr) {
					// Half of a pair: combined with a following \u escape
					// when the two make one; else U+FFFD, and the next
					// escape is decoded on its own.
					if i+1 < len(data) && data[i] == '\\' && data[i+1] == 'u' {
						if rr1, bad := hex4(data, i+2); bad < 0 {
							if dec := utf16.DecodeRune(rr, rr1); dec != unicode.ReplacementChar {
								buf = utf8.AppendRune(buf, dec)
								i += 6
								continue
							}
						}
					}
					rr = unicode.ReplacementChar
				}
				buf = utf8.AppendRune(buf, rr)
				continue
			default:
				return nil, p.fail(i+1, "in a string escape")
			}
			i += 2
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			// Invalid UTF-8 becomes U+FFFD, a byte at a time.
			r, size := utf8.DecodeRune(data[i:])
			buf = utf8.AppendRune(buf, r)
			i += size
		}
	}
}

// hex4 decodes the four hex digits at data[i:]; bad is the offset of the
// first that is not one (or the end), -1 when all are.
func hex4(data []byte, i int) (r rune, bad int) {
	for j := i; j < i+4; j++ {
		if j >= len(data) {
			return 0, j
		}
		c := data[j]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, j
		}
		r = r<<4 | rune(c)
	}
	return r, -1
}

// array parses the array at p.pos, the depth-th nested container.
func (p *jsonParser) array(depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, &JSONError{Offset: p.pos, Msg: "nesting deeper than " + strconv.Itoa(maxJSONDepth)}
	}
	p.pos++
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return []any{}, nil
	}
	base := len(p.mvals)
	for {
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		p.mvals = append(p.mvals, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail(p.pos, "after an array element")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case ']':
			p.pos++
			out := make([]any, len(p.mvals)-base)
			copy(out, p.mvals[base:])
			clear(p.mvals[base:])
			p.mvals = p.mvals[:base]
			return out, nil
		default:
			return nil, p.fail(p.pos, "after an array element")
		}
	}
}

// object parses the object at p.pos, the depth-th nested container. With
// rows on, an object whose keys come in the order of a remembered shape
// (first key first) is parsed straight into a row of its schema; any
// other is collected on the member stacks and built by finishObject.
func (p *jsonParser) object(depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, &JSONError{Offset: p.pos, Msg: "nesting deeper than " + strconv.Itoa(maxJSONDepth)}
	}
	p.pos++
	p.skipSpace()
	kbase, vbase := len(p.mkeys), len(p.mvals)
	var ways *[jsonShapeWays]*jsonShape
	if p.ctx.rows && depth <= maxShapeDepth {
		ways = &p.shapes[depth-1]
	}
	var shape *jsonShape // the shape matched so far
	var row *Row         // its row, holding the members matched
	matched := 0
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return p.finishObject(kbase, vbase, depth)
	}
	for i := 0; ; i++ {
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.fail(p.pos, "looking for the beginning of an object key")
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		if p.escaped {
			key = append([]byte(nil), key...)
		}
		if i == 0 && ways != nil {
			for _, s := range ways {
				if s != nil && s.keys[0] == string(key) {
					shape, row = s, NewRow(s.schema)
					break
				}
			}
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.fail(p.pos, "after an object key")
		}
		p.pos++
		p.skipSpace()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		if shape != nil {
			if i < len(shape.keys) && shape.keys[i] == string(key) {
				row.vals[shape.perm[i]] = v
				matched++
			} else {
				p.spill(shape, row, matched)
				shape, row = nil, nil
			}
		}
		if shape == nil {
			p.mkeys, p.mvals = append(p.mkeys, key), append(p.mvals, v)
		}
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail(p.pos, "after an object member")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case '}':
			p.pos++
			if shape != nil {
				if matched == len(shape.keys) {
					return row, nil
				}
				p.spill(shape, row, matched) // fewer members than the shape
			}
			return p.finishObject(kbase, vbase, depth)
		default:
			return nil, p.fail(p.pos, "after an object member")
		}
	}
}

// spill moves the first n members of row, matched against shape, onto the
// member stacks, for an object that turned out to have other keys.
func (p *jsonParser) spill(shape *jsonShape, row *Row, n int) {
	for i, k := range shape.keys[:n] {
		p.mkeys = append(p.mkeys, unsafe.Slice(unsafe.StringData(k), len(k))) // read only
		p.mvals = append(p.mvals, row.vals[shape.perm[i]])
	}
}

// finishObject builds the object whose members are on the stacks from
// kbase and vbase, and cuts them off: a map, or with rows on a row (of at
// most maxRowFields distinct fields, and of a schema the schema table holds
// or takes), remembering its shape.
func (p *jsonParser) finishObject(kbase, vbase, depth int) (any, error) {
	keys, vals := p.mkeys[kbase:], p.mvals[vbase:]
	n := len(keys)
	defer func() {
		clear(keys)
		clear(vals)
		clear(p.skeys)
		clear(p.svals)
		p.mkeys, p.mvals, p.skeys, p.svals = p.mkeys[:kbase], p.mvals[:vbase], p.skeys[:0], p.svals[:0]
	}()
	if !p.ctx.rows {
		return p.objectMap(keys, vals), nil
	}
	// Sort the members by key, stably, and keep the last of each run of
	// equal keys. This is the path of a new shape: insertion sort for a
	// record's few fields.
	idx := p.idx[:0]
	for i := range n {
		idx = append(idx, i)
	}
	if n <= maxShapeLen {
		for i := 1; i < n; i++ {
			for j := i; j > 0 && string(keys[idx[j-1]]) > string(keys[idx[j]]); j-- {
				idx[j-1], idx[j] = idx[j], idx[j-1]
			}
		}
	} else {
		slices.SortStableFunc(idx, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
	}
	p.idx = idx
	skeys, svals := p.skeys[:0], p.svals[:0]
	for j, i := range idx {
		if j+1 < n && string(keys[idx[j+1]]) == string(keys[i]) {
			continue // a later member has this key
		}
		skeys, svals = append(skeys, keys[i]), append(svals, vals[i])
	}
	p.skeys, p.svals = skeys, svals
	if len(skeys) > maxRowFields {
		return p.objectMap(keys, vals), nil
	}
	s := p.ctx.schemaOf(skeys)
	if s == nil {
		return p.objectMap(keys, vals), nil
	}
	r := NewRow(s)
	copy(r.vals, svals)
	if len(skeys) == n && n > 0 && depth <= maxShapeDepth {
		p.remember(depth, s, idx)
	}
	return r, nil
}

// remember records the shape of an object of schema s whose i-th member
// in input order is field pos of s, where idx[pos] == i.
func (p *jsonParser) remember(depth int, s *Schema, idx []int) {
	ways := &p.shapes[depth-1]
	first := s.names[0]
	for pos, i := range idx {
		if i == 0 {
			first = s.names[pos]
		}
	}
	// Replace the shape with the same first key (it no longer matches),
	// else an empty way, else the ways in turn.
	w := -1
	for j, sh := range ways {
		if sh != nil && sh.keys[0] == first {
			w = j
			break
		}
	}
	if w < 0 {
		for j, sh := range ways {
			if sh == nil {
				w = j
				break
			}
		}
	}
	if w < 0 {
		w = int(p.nextWay[depth-1] % jsonShapeWays)
		p.nextWay[depth-1]++
	}
	sh := ways[w]
	n := len(idx)
	if sh == nil || cap(sh.keys) < n {
		sh = &jsonShape{keys: make([]string, n), perm: make([]int, n)}
		ways[w] = sh
	}
	sh.schema, sh.keys, sh.perm = s, sh.keys[:n], sh.perm[:n]
	for pos, i := range idx {
		sh.keys[i], sh.perm[i] = s.names[pos], pos
	}
}

// objectMap builds a map of members; a repeated key keeps its last value.
func (p *jsonParser) objectMap(keys [][]byte, vals []any) map[string]any {
	m := make(map[string]any, len(keys))
	for i, k := range keys {
		m[p.ctx.key(k)] = vals[i]
	}
	return m
}
