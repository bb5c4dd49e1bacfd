package connector

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/flinkjob/flinkjob/engine/projection"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Nexmark generates the events of the Nexmark benchmark the way its
// standard generator does (Apache Beam's NexmarkUtils/Generator, which the
// nexmark/nexmark project for Flink copies): event number n is a person, an
// auction or a bid in the proportions 1:3:46 out of every 50, person and
// auction ids are derived from n (both counting from 1000), and bids go to
// hot auctions and come from hot bidders with the configured ratios.
//
// Checked against nexmark/nexmark's generator (GeneratorConfig,
// NexmarkGenerator, Person/Auction/BidGenerator): the id arithmetic
// (lastBase0PersonId, lastBase0AuctionId, nextBase0PersonId/AuctionId with
// their lead of 10 ids not generated yet, so a bid or an auction may name
// an auction or a person that appears a little later, as in Nexmark),
// the hot batches of 100, the categories, prices, string and extra lengths,
// the auction length (1 + uniform [0, 2*horizon) ms, horizon the event time
// of InFlightAuctions auctions later) and the channels (half of the bids on
// four hot channels, each with one fixed URL; the rest on channel-0..9999,
// each with its own fixed URL) are the same. Deliberate differences:
//
//   - The random values come from a splitmix64 generator seeded with
//     (Seed, n) rather than java.util.Random, so the values differ from
//     Java's while their distributions are the same.
//   - Parallel subtasks share one timeline: subtask i of p generates the n
//     with n ≡ i (mod p) and event n is at BaseTime + n*1000/FirstEventRate
//     ms, so the output is the same at any parallelism. nexmark/nexmark
//     splits the ids into p contiguous ranges with a timeline each, whose
//     event times depend on p.
//   - nexmark/nexmark's Flink BidGenerator adds FIRST_PERSON_ID to the
//     bidder twice (its bidders are 1000 above any person id); this adds it
//     once, as Beam does, so bids join persons.
//   - No out-of-order groups (Beam's outOfOrderGroupSize, 1 by default)
//     and no rate shapes: one event-time rate, FirstEventRate.
//   - The extra padding strings are cut from one shared pool of random
//     letters (their lengths are Nexmark's), so they overlap between
//     events; no query reads them.
//
// A reader builds each event and its body as rows (*value.Row) while
// value.UseRows is on when it opens, else as maps, with the same content;
// Event and EventFields always build maps.
type Nexmark struct {
	// Events bounds the source; negative means unbounded.
	Events        int64
	RatePerSecond int64
	Seed          int64
	Config        NexmarkConfig
	// Fields, when set, is the part of each event the job reads: the rest
	// is not generated (projection pushdown, from the plan). nil
	// generates whole events.
	Fields *projection.Fields
}

// NexmarkConfig holds the generator's knobs (Beam's GeneratorConfig).
type NexmarkConfig struct {
	FirstEventRate   int64
	HotAuctionRatio  int64
	HotSellerRatio   int64
	HotBidderRatio   int64
	ActivePeople     int64
	InFlightAuctions int64
}

// Nexmark's constants (Beam's GeneratorConfig, PersonGenerator,
// AuctionGenerator, BidGenerator).
const (
	NexmarkPersonProportion  = 1
	NexmarkAuctionProportion = 3
	NexmarkBidProportion     = 46
	NexmarkTotalProportion   = NexmarkPersonProportion + NexmarkAuctionProportion + NexmarkBidProportion

	NexmarkFirstPersonID   = 1000
	NexmarkFirstAuctionID  = 1000
	NexmarkFirstCategoryID = 10
	NexmarkNumCategories   = 5
	// NexmarkPersonIDLead and NexmarkAuctionIDLead: a bid may name one of
	// the next few persons or auctions, not generated yet (as in Nexmark).
	NexmarkPersonIDLead  = 10
	NexmarkAuctionIDLead = 10

	// Hot auctions, sellers and bidders are the first of each batch of
	// this many of the latest auctions or persons.
	nexmarkHotAuctionBatch = 100
	nexmarkHotSellerBatch  = 100
	nexmarkHotBidderBatch  = 100

	nexmarkAvgPersonBytes  = 200
	nexmarkAvgAuctionBytes = 500
	nexmarkAvgBidBytes     = 100
	nexmarkHotChannelRatio = 2
	nexmarkChannels        = 10000
)

// NexmarkBaseTime is the event time of event 0: 2015-07-15T00:00:00Z in ms.
const NexmarkBaseTime int64 = 1436918400000

// DefaultNexmarkConfig is Nexmark's default configuration.
var DefaultNexmarkConfig = NexmarkConfig{
	FirstEventRate:   10000,
	HotAuctionRatio:  2,
	HotSellerRatio:   4,
	HotBidderRatio:   4,
	ActivePeople:     1000,
	InFlightAuctions: 100,
}

// NewNexmark creates the source of a spec; zero knobs take Nexmark's defaults.
func NewNexmark(s spec.Nexmark) Nexmark {
	n := Nexmark{Events: -1, RatePerSecond: s.RatePerSecond, Seed: s.Seed, Config: DefaultNexmarkConfig}
	if s.Events != nil {
		n.Events = *s.Events
	}
	set := func(dst *int64, v int64) {
		if v > 0 {
			*dst = v
		}
	}
	set(&n.Config.FirstEventRate, s.FirstEventRate)
	set(&n.Config.HotAuctionRatio, s.HotAuctionRatio)
	set(&n.Config.HotSellerRatio, s.HotSellerRatio)
	set(&n.Config.HotBidderRatio, s.HotBidderRatio)
	set(&n.Config.ActivePeople, s.ActivePeople)
	set(&n.Config.InFlightAuctions, s.InFlightAuctions)
	return n
}

func (x Nexmark) Bounded() bool { return x.Events >= 0 }

func (x Nexmark) Open(_ context.Context, index, parallelism int) (Reader, error) {
	if err := x.Config.check(); err != nil {
		return nil, err
	}
	shape := nexmarkAll
	if x.Fields != nil {
		shape = newNexmarkShape(x.Fields)
	}
	r := &nexmarkReader{x: x, shape: shape, strided: newStrided("nexmark", index, parallelism, x.RatePerSecond)}
	if value.UseRows {
		r.rows = newNexmarkRows(shape)
	}
	return r, nil
}

func (c NexmarkConfig) check() error {
	for _, k := range []struct {
		name string
		v    int64
	}{
		{"firstEventRate", c.FirstEventRate}, {"hotAuctionRatio", c.HotAuctionRatio},
		{"hotSellerRatio", c.HotSellerRatio}, {"hotBidderRatio", c.HotBidderRatio},
		{"activePeople", c.ActivePeople}, {"inFlightAuctions", c.InFlightAuctions},
	} {
		if k.v < 1 {
			return fmt.Errorf("nexmark: %s must be at least 1, not %d", k.name, k.v)
		}
	}
	return nil
}

// nexmarkReader's position is the next event number (strided).
type nexmarkReader struct {
	x     Nexmark
	shape nexmarkShape
	// rows, when set (value.UseRows at Open), makes the reader build rows.
	rows  *nexmarkRows
	boxes idBoxes
	free  nexmarkFree
	strided
}

func (r *nexmarkReader) Read(ctx context.Context, max int, emit func(any)) error {
	n, err := r.pace.due(ctx, max)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if r.x.Events >= 0 && r.next >= r.x.Events {
			return io.EOF
		}
		emit(r.x.Config.event(r.x.Seed, r.next, r.shape, r.rows, &r.boxes, &r.free))
		r.next += r.step
		r.pace.sent(1)
	}
	if r.x.Events >= 0 && r.next >= r.x.Events {
		return io.EOF
	}
	return nil
}

func (r *nexmarkReader) Close() error { return nil }

// Recycle takes back an event the job dropped unseen (connector.Recycler):
// it and its body are refilled for a later event.
func (r *nexmarkReader) Recycle(v any) {
	switch e := v.(type) {
	case map[string]any:
		r.free.put(e)
	case *value.Row:
		if r.rows != nil {
			r.rows.put(&r.free, e)
		}
	}
}

// The three kinds of event, by index: an event's "type" and the field
// holding its body.
const (
	nexmarkPerson = iota
	nexmarkAuction
	nexmarkBid
)

// nexmarkKinds names the kinds; nexmarkKindValues holds the same names
// boxed once, so storing an event's type allocates nothing.
var (
	nexmarkKinds      = [3]string{"person", "auction", "bid"}
	nexmarkKindValues = [3]any{"person", "auction", "bid"}
)

// nexmarkKind is the kind of event n.
func nexmarkKind(n int64) int {
	switch rem := n % NexmarkTotalProportion; {
	case rem < NexmarkPersonProportion:
		return nexmarkPerson
	case rem < NexmarkPersonProportion+NexmarkAuctionProportion:
		return nexmarkAuction
	}
	return nexmarkBid
}

// Timestamp is the event time of event n in ms.
func (c NexmarkConfig) Timestamp(n int64) int64 {
	// n*1000 overflows only after ~9e15 events.
	return NexmarkBaseTime + n*1000/c.FirstEventRate
}

// NexmarkLastPersonID is the base-0 id of the last person generated at or
// before event n (Beam's lastBase0PersonId).
func NexmarkLastPersonID(n int64) int64 {
	epoch, offset := n/NexmarkTotalProportion, n%NexmarkTotalProportion
	if offset >= NexmarkPersonProportion {
		offset = NexmarkPersonProportion - 1
	}
	return epoch*NexmarkPersonProportion + offset
}

// NexmarkLastAuctionID is the base-0 id of the last auction generated at or
// before event n (Beam's lastBase0AuctionId); -1 before the first.
func NexmarkLastAuctionID(n int64) int64 {
	epoch, offset := n/NexmarkTotalProportion, n%NexmarkTotalProportion
	switch {
	case offset < NexmarkPersonProportion:
		epoch--
		offset = NexmarkAuctionProportion - 1
	case offset >= NexmarkPersonProportion+NexmarkAuctionProportion:
		offset = NexmarkAuctionProportion - 1
	default:
		offset -= NexmarkPersonProportion
	}
	return epoch*NexmarkAuctionProportion + offset
}

// Event generates event n: {"type": kind, "ts": ms, kind: {...}}, always
// as maps (a reader builds rows when value.UseRows is on, with the same
// content).
func (c NexmarkConfig) Event(seed, n int64) map[string]any {
	return c.event(seed, n, nexmarkAll, nil, nil, nil).(map[string]any)
}

// EventFields generates the part of event n that f reads (see package
// projection): the fields it leaves out are absent and never built, and
// every field it keeps has the value Event gives it (the random draws of
// the fields left out are skipped, not changed). A nil f builds no field.
func (c NexmarkConfig) EventFields(seed, n int64, f *projection.Fields) map[string]any {
	return c.event(seed, n, newNexmarkShape(f), nil, nil, nil).(map[string]any)
}

// idBoxes keeps the ids a reader boxed lately, so the ids that recur
// (hot auctions, bidders and sellers, in-flight auctions) are stored in
// events without a new allocation each time: a direct-mapped cache by the
// id's low bits. It keeps the last event time boxed too, which the next
// events share while they fall in the same millisecond (FirstEventRate/1000
// events in a row do). A nil cache boxes every time. Boxed values are
// never changed, so any number of events may share one.
type idBoxes struct {
	ids   [2048]any
	ts    int64
	tsBox any
	// channels is nexmarkChannelsOf(seed) kept at hand (a reader has one
	// seed), sparing bids a sync.Map lookup.
	channels *nexmarkChannelSet
	seed     int64
}

func (b *idBoxes) box(id int64) any {
	if b == nil {
		return id
	}
	slot := &b.ids[uint64(id)%uint64(len(b.ids))]
	if v, ok := (*slot).(int64); ok && v == id {
		return *slot
	}
	*slot = id
	return *slot
}

func (b *idBoxes) channelsOf(seed int64) *nexmarkChannelSet {
	if b == nil {
		return nexmarkChannelsOf(seed)
	}
	if b.channels == nil || b.seed != seed {
		b.channels, b.seed = nexmarkChannelsOf(seed), seed
	}
	return b.channels
}

func (b *idBoxes) boxTs(ts int64) any {
	if b == nil {
		return ts
	}
	if b.tsBox == nil || b.ts != ts {
		b.ts, b.tsBox = ts, ts
	}
	return b.tsBox
}

// nexmarkFree holds the events a reader got back (connector.Recycler) and
// their bodies by kind, emptied, to be refilled instead of allocated. A
// nil one allocates.
type nexmarkFree struct {
	events []map[string]any
	bodies [3][]map[string]any // by kind
	// The same for a reader that builds rows: events and bodies by kind,
	// since each kind has its own schemas.
	rowEvents [3][]*value.Row
	rowBodies [3][]*value.Row
}

// maxNexmarkFree bounds each free list: one value comes back at most per
// value emitted, so a few cover every reuse.
const maxNexmarkFree = 8

func (f *nexmarkFree) put(e map[string]any) {
	if len(f.events) >= maxNexmarkFree {
		return
	}
	for k, kind := range nexmarkKinds {
		if b, ok := e[kind].(map[string]any); ok && len(f.bodies[k]) < maxNexmarkFree {
			clear(b)
			f.bodies[k] = append(f.bodies[k], b)
		}
	}
	clear(e)
	f.events = append(f.events, e)
}

// take pops an empty map from list, or returns nil.
func take(list *[]map[string]any) map[string]any {
	l := *list
	if len(l) == 0 {
		return nil
	}
	*list = l[:len(l)-1]
	return l[len(l)-1]
}

// event builds event n as maps, or as rows when rows is set.
func (c NexmarkConfig) event(seed, n int64, sh nexmarkShape, rows *nexmarkRows, boxes *idBoxes, free *nexmarkFree) any {
	k := nexmarkKind(n)
	mask := sh.body[k]
	var ts any
	if sh.ts || mask&nxDateTime != 0 {
		// Boxed once: the event's ts and its body's dateTime share it.
		ts = boxes.boxTs(c.Timestamp(n))
	}
	var body any
	if mask != 0 {
		var out bodyOut
		if rows != nil {
			out = rows.bodyRow(k, free)
		} else {
			var m map[string]any
			if free != nil {
				m = take(&free.bodies[k])
			}
			out.m = newBody(m, mask, nexmarkKindWidth[k])
		}
		r := newNexmarkRand(seed, n)
		switch k {
		case nexmarkPerson:
			c.person(n, &r, ts, mask, out)
		case nexmarkAuction:
			c.auction(n, &r, ts, mask, boxes, out)
		default:
			c.bid(seed, n, &r, ts, mask, boxes, out)
		}
		body = out.value()
	}
	if rows != nil {
		return rows.eventRow(k, ts, body, free)
	}
	var e map[string]any
	if free != nil {
		e = take(&free.events)
	}
	if e == nil {
		e = make(map[string]any, 3)
	}
	if sh.typ {
		e["type"] = nexmarkKindValues[k]
	}
	if sh.ts {
		e["ts"] = ts
	}
	if mask != 0 {
		e[nexmarkKinds[k]] = body
	}
	return e
}

// bodyOut is the body being generated: a map, or a row with the index of
// each field bit (nexmarkRows). The generators set fields through it, so
// one generator serves both forms.
type bodyOut struct {
	m   map[string]any
	r   *value.Row
	idx *[32]int8
}

// set stores field bit (one of nxID...nxURL) named name.
func (b bodyOut) set(bit uint32, name string, v any) {
	if b.r != nil {
		b.r.Set(int(b.idx[bits.TrailingZeros32(bit)]), v)
		return
	}
	b.m[name] = v
}

func (b bodyOut) value() any {
	if b.r != nil {
		return b.r
	}
	return b.m
}

// nexmarkRows is what a reader that builds rows computes once from its
// shape: per kind, the interned schemas of the event and of its body
// (the fields the shape keeps, in sorted order) and where each field goes,
// so building an event is a NewRow and stores by index.
type nexmarkRows struct {
	event [3]*value.Schema
	// typ, ts and body are the indices in event[k] of the event's fields
	// (-1: left out).
	typ, ts, bodyAt [3]int
	// free[k] is the free list (nexmarkFree.rowEvents) of kind k's event
	// rows: the first kind of the same event schema, since kinds whose
	// bodies are left out share one and put cannot tell them apart.
	free [3]int
	body [3]*value.Schema
	// field[k][b] is the index in body[k] of the field of bit 1<<b.
	field [3][32]int8
}

func newNexmarkRows(sh nexmarkShape) *nexmarkRows {
	r := &nexmarkRows{}
	for k, kind := range nexmarkKinds {
		var names []string
		if sh.typ {
			names = append(names, "type")
		}
		if sh.ts {
			names = append(names, "ts")
		}
		mask := sh.body[k]
		if mask != 0 {
			names = append(names, kind)
		}
		r.event[k] = value.MustSchemaOf(names...)
		r.free[k] = slices.Index(r.event[:], r.event[k])
		r.typ[k], r.ts[k], r.bodyAt[k] = r.event[k].Index("type"), r.event[k].Index("ts"), r.event[k].Index(kind)
		var fields []string
		for _, f := range nexmarkKindFields[k] {
			if mask&nexmarkFieldBits[f] != 0 {
				fields = append(fields, f)
			}
		}
		r.body[k] = value.MustSchemaOf(fields...)
		for b := range r.field[k] {
			r.field[k][b] = -1
		}
		for _, f := range fields {
			r.field[k][bits.TrailingZeros32(nexmarkFieldBits[f])] = int8(r.body[k].Index(f))
		}
	}
	return r
}

// bodyRow is an empty body row of kind k, recycled when free has one.
func (r *nexmarkRows) bodyRow(k int, free *nexmarkFree) bodyOut {
	var b *value.Row
	if free != nil {
		if l := free.rowBodies[k]; len(l) > 0 {
			b, free.rowBodies[k] = l[len(l)-1], l[:len(l)-1]
		}
	}
	if b == nil {
		b = value.NewRow(r.body[k])
	}
	return bodyOut{r: b, idx: &r.field[k]}
}

// eventRow is the event row of kind k around its body (nil when left out).
func (r *nexmarkRows) eventRow(k int, ts, body any, free *nexmarkFree) *value.Row {
	var e *value.Row
	if free != nil {
		if l := free.rowEvents[r.free[k]]; len(l) > 0 {
			e, free.rowEvents[r.free[k]] = l[len(l)-1], l[:len(l)-1]
		}
	}
	if e == nil {
		e = value.NewRow(r.event[k])
	}
	if i := r.typ[k]; i >= 0 {
		e.Set(i, nexmarkKindValues[k])
	}
	if i := r.ts[k]; i >= 0 {
		e.Set(i, ts)
	}
	if i := r.bodyAt[k]; i >= 0 {
		e.Set(i, body)
	}
	return e
}

// put takes back an event row this reader built (its schema tells the
// kind, or the first of the kinds sharing it; a row of another schema is
// left alone) and its body, emptied. A
// body cut out of the event (operator detach sets it to null) stays with
// whoever took it.
func (r *nexmarkRows) put(f *nexmarkFree, e *value.Row) {
	k := -1
	for i, s := range r.event {
		if e.Schema() == s {
			k = i
			break
		}
	}
	if k < 0 || len(f.rowEvents[k]) >= maxNexmarkFree {
		return
	}
	if i := r.bodyAt[k]; i >= 0 {
		if b, ok := e.At(i).(*value.Row); ok && b.Schema() == r.body[k] && len(f.rowBodies[k]) < maxNexmarkFree {
			clear(b.Values())
			f.rowBodies[k] = append(f.rowBodies[k], b)
		}
	}
	clear(e.Values())
	f.rowEvents[k] = append(f.rowEvents[k], e)
}

// The fields of the three bodies as bits of a mask (nexmarkShape); a body
// is built when its mask is not 0, so nxBody marks a body none of whose
// known fields is read (an expression naming a field no event has still
// sees the body and fails as it would on the whole event).
const (
	nxID uint32 = 1 << iota
	nxName
	nxEmail
	nxCard
	nxCity
	nxState
	nxDateTime
	nxExtra
	nxItemName
	nxDescription
	nxInitialBid
	nxReserve
	nxExpires
	nxSeller
	nxCategory
	nxAuction
	nxBidder
	nxPrice
	nxChannel
	nxURL
	nxBody
)

// nexmarkKindFields are the fields of each kind's body, and
// nexmarkKindWidth their number.
var (
	nexmarkKindFields = [3][]string{
		{"id", "name", "emailAddress", "creditCard", "city", "state", "dateTime", "extra"},
		{"id", "itemName", "description", "initialBid", "reserve", "dateTime", "expires", "seller", "category", "extra"},
		{"auction", "bidder", "price", "channel", "url", "dateTime", "extra"},
	}
	nexmarkKindWidth = [3]int{8, 10, 7}
)

var nexmarkFieldBits = map[string]uint32{
	"id": nxID, "name": nxName, "emailAddress": nxEmail, "creditCard": nxCard, "city": nxCity,
	"state": nxState, "dateTime": nxDateTime, "extra": nxExtra, "itemName": nxItemName,
	"description": nxDescription, "initialBid": nxInitialBid, "reserve": nxReserve,
	"expires": nxExpires, "seller": nxSeller, "category": nxCategory, "auction": nxAuction,
	"bidder": nxBidder, "price": nxPrice, "channel": nxChannel, "url": nxURL,
}

// nexmarkShape is what a job reads of an event, resolved from a
// projection once per reader so that generating tests bits, not maps:
// body[k] is the mask of the body of kind k (0: left out).
type nexmarkShape struct {
	typ, ts bool
	body    [3]uint32
}

var nexmarkAll = nexmarkShape{typ: true, ts: true, body: [3]uint32{^uint32(0), ^uint32(0), ^uint32(0)}}

func newNexmarkShape(f *projection.Fields) nexmarkShape {
	if f.IsAll() {
		return nexmarkAll
	}
	body := func(b *projection.Fields) uint32 {
		switch {
		case b == nil:
			return 0
		case b.All:
			return ^uint32(0)
		}
		m := nxBody
		for name := range b.Sub {
			m |= nexmarkFieldBits[name]
		}
		return m
	}
	sh := nexmarkShape{typ: f.Has("type"), ts: f.Has("ts")}
	for k, kind := range nexmarkKinds {
		sh.body[k] = body(f.Field(kind))
	}
	return sh
}

var (
	nexmarkStates      = []string{"AZ", "CA", "ID", "OR", "WA", "WY"}
	nexmarkCities      = []string{"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"}
	nexmarkFirstNames  = []string{"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"}
	nexmarkLastNames   = []string{"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"}
	nexmarkHotChannels = []string{"Google", "Facebook", "Baidu", "Apple"}
)

// The body generators draw every random value in the same order whatever
// the mask (so a field has the same value whichever others are read) and
// build, box and store only the masked fields; they stop drawing after
// the last one read.

// newBody is m (a recycled, empty map) or, when nil, a new map for up to
// max fields.
func newBody(m map[string]any, mask uint32, max int) map[string]any {
	if m != nil {
		return m
	}
	return make(map[string]any, min(bits.OnesCount32(mask&^nxBody), max))
}

func (c NexmarkConfig) person(n int64, rng *nexmarkRand, ts any, mask uint32, out bodyOut) {
	if mask&nxID != 0 {
		out.set(nxID, "id", NexmarkLastPersonID(n)+NexmarkFirstPersonID)
	}
	if mask&nxDateTime != 0 {
		out.set(nxDateTime, "dateTime", ts)
	}
	if mask&^(nxBody|nxID|nxDateTime) == 0 {
		return
	}
	first, last := nexmarkFirstNames[rng.intn(len(nexmarkFirstNames))], nexmarkLastNames[rng.intn(len(nexmarkLastNames))]
	size := 8 + len(first) + 1 + len(last)
	if mask&nxName != 0 {
		out.set(nxName, "name", first+" "+last)
	}
	if mask&nxEmail != 0 {
		email := rng.str(7) + "@" + rng.str(5) + ".com"
		size += len(email)
		out.set(nxEmail, "emailAddress", email)
	} else {
		size += rng.strLen(7) + 1 + rng.strLen(5) + 4
	}
	if mask&nxCard != 0 {
		card := make([]byte, 0, 19)
		for i := range 4 {
			if i > 0 {
				card = append(card, ' ')
			}
			v := rng.intn(10000)
			card = append(card, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
		}
		out.set(nxCard, "creditCard", string(card))
	} else {
		rng.skip(4)
	}
	size += 19
	city := nexmarkCities[rng.intn(len(nexmarkCities))]
	state := nexmarkStates[rng.intn(len(nexmarkStates))]
	size += len(city) + len(state)
	if mask&nxCity != 0 {
		out.set(nxCity, "city", city)
	}
	if mask&nxState != 0 {
		out.set(nxState, "state", state)
	}
	if mask&nxExtra != 0 {
		out.set(nxExtra, "extra", rng.extra(size, nexmarkAvgPersonBytes))
	}
}

// nextPerson is a random active person's base-0 id (Beam's nextBase0PersonId).
func (c NexmarkConfig) nextPerson(n int64, rng *nexmarkRand) int64 {
	people := NexmarkLastPersonID(n) + 1
	active := min(people, c.ActivePeople)
	return people - active + rng.int63n(active+NexmarkPersonIDLead)
}

// nextAuction is a random in-flight auction's base-0 id (Beam's nextBase0AuctionId).
func (c NexmarkConfig) nextAuction(n int64, rng *nexmarkRand) int64 {
	last := NexmarkLastAuctionID(n)
	first := max(last-c.InFlightAuctions, 0)
	return first + rng.int63n(last-first+1+NexmarkAuctionIDLead)
}

func (c NexmarkConfig) auction(n int64, rng *nexmarkRand, tsAny any, mask uint32, boxes *idBoxes, out bodyOut) {
	if mask&nxID != 0 {
		out.set(nxID, "id", NexmarkLastAuctionID(n)+NexmarkFirstAuctionID)
	}
	if mask&nxDateTime != 0 {
		out.set(nxDateTime, "dateTime", tsAny)
	}
	if mask&^(nxBody|nxID|nxDateTime) == 0 {
		return
	}
	var seller int64
	if rng.int63n(c.HotSellerRatio) > 0 {
		seller = (NexmarkLastPersonID(n) / nexmarkHotSellerBatch) * nexmarkHotSellerBatch
	} else {
		seller = c.nextPerson(n, rng)
	}
	if mask&nxSeller != 0 {
		out.set(nxSeller, "seller", boxes.box(seller+NexmarkFirstPersonID))
	}
	category := int64(NexmarkFirstCategoryID + rng.intn(NexmarkNumCategories))
	if mask&nxCategory != 0 {
		out.set(nxCategory, "category", category)
	}
	initialBid := rng.price()
	if mask&nxInitialBid != 0 {
		out.set(nxInitialBid, "initialBid", initialBid)
	}
	if mask&(nxExpires|nxItemName|nxDescription|nxReserve|nxExtra) == 0 {
		return
	}
	// Auctions last, on average, until numInFlightAuctions more auctions
	// have been generated (Beam's nextAuctionLengthMs).
	ts := c.Timestamp(n)
	horizon := c.Timestamp(n+c.InFlightAuctions*NexmarkTotalProportion/NexmarkAuctionProportion) - ts
	expires := ts + 1 + rng.int63n(max(horizon*2, 1))
	if mask&nxExpires != 0 {
		out.set(nxExpires, "expires", expires)
	}
	if mask&(nxItemName|nxDescription|nxReserve|nxExtra) == 0 {
		return
	}
	size := 8 + 8 + 8 + 8 + 8 + 8
	if mask&nxItemName != 0 {
		name := rng.str(20)
		size += len(name)
		out.set(nxItemName, "itemName", name)
	} else {
		size += rng.strLen(20)
	}
	if mask&nxDescription != 0 {
		desc := rng.str(100)
		size += len(desc)
		out.set(nxDescription, "description", desc)
	} else {
		size += rng.strLen(100)
	}
	reserve := initialBid + rng.price()
	if mask&nxReserve != 0 {
		out.set(nxReserve, "reserve", reserve)
	}
	if mask&nxExtra != 0 {
		out.set(nxExtra, "extra", rng.extra(size, nexmarkAvgAuctionBytes))
	}
}

func (c NexmarkConfig) bid(seed, n int64, rng *nexmarkRand, ts any, mask uint32, boxes *idBoxes, out bodyOut) {
	if mask&nxDateTime != 0 {
		out.set(nxDateTime, "dateTime", ts)
	}
	if mask&^(nxBody|nxDateTime) == 0 {
		return
	}
	var auction int64
	if rng.int63n(c.HotAuctionRatio) > 0 {
		auction = (NexmarkLastAuctionID(n) / nexmarkHotAuctionBatch) * nexmarkHotAuctionBatch
	} else {
		auction = c.nextAuction(n, rng)
	}
	if mask&nxAuction != 0 {
		out.set(nxAuction, "auction", boxes.box(auction+NexmarkFirstAuctionID))
	}
	var bidder int64
	if rng.int63n(c.HotBidderRatio) > 0 {
		// The second person of the batch, so hot bidders and sellers differ.
		bidder = (NexmarkLastPersonID(n)/nexmarkHotBidderBatch)*nexmarkHotBidderBatch + 1
	} else {
		bidder = c.nextPerson(n, rng)
	}
	if mask&nxBidder != 0 {
		out.set(nxBidder, "bidder", boxes.box(bidder+NexmarkFirstPersonID))
	}
	price := rng.price()
	if mask&nxPrice != 0 {
		out.set(nxPrice, "price", price)
	}
	if mask&(nxChannel|nxURL|nxExtra) == 0 {
		return
	}
	cs := boxes.channelsOf(seed)
	var channel, url any
	if rng.intn(nexmarkHotChannelRatio) > 0 {
		i := rng.intn(len(nexmarkHotChannels))
		channel, url = cs.hotNames[i], cs.hotURLs[i]
	} else {
		id := rng.intn(nexmarkChannels)
		channel, url = cs.names[id], cs.urls[id]
	}
	if mask&nxChannel != 0 {
		out.set(nxChannel, "channel", channel)
	}
	if mask&nxURL != 0 {
		out.set(nxURL, "url", url)
	}
	if mask&nxExtra != 0 {
		out.set(nxExtra, "extra", rng.extra(8+8+8+8, nexmarkAvgBidBytes))
	}
}

// A channel's URL is the same in every bid (nexmark/nexmark caches one per
// channel): a base URL of three short random path segments, drawn from a
// generator seeded by (seed, the channel) alone, and for nine in ten of the
// numbered channels a channel_id parameter (the bit-reversed channel
// number, as nexmark/nexmark writes it).
func nexmarkBaseURL(r *nexmarkRand) string {
	return "https://www.nexmark.com/" + r.strWith(5, '_') + "/" + r.strWith(5, '_') + "/" + r.strWith(5, '_') + "/item.htm?query=1"
}

// nexmarkChannels caches, per seed, the channels' names and URLs: they
// are the same in every bid, so a bid only picks one. They are kept boxed
// (a string stored in an interface is otherwise copied to the heap).
type nexmarkChannelSet struct {
	once     sync.Once
	hotNames [4]any
	hotURLs  [4]any
	names    [nexmarkChannels]any
	urls     [nexmarkChannels]any
}

var nexmarkChannelSets sync.Map // int64 seed -> *nexmarkChannelSet

func nexmarkChannelsOf(seed int64) *nexmarkChannelSet {
	v, ok := nexmarkChannelSets.Load(seed)
	if !ok {
		v, _ = nexmarkChannelSets.LoadOrStore(seed, &nexmarkChannelSet{})
	}
	cs := v.(*nexmarkChannelSet)
	cs.once.Do(func() {
		for j := range cs.hotURLs {
			r := newNexmarkRand(seed, -1-int64(j))
			cs.hotNames[j], cs.hotURLs[j] = nexmarkHotChannels[j], nexmarkBaseURL(&r)
		}
		for id := range cs.names {
			cs.names[id] = "channel-" + strconv.Itoa(id)
			r := newNexmarkRand(seed, -100-int64(id))
			url := nexmarkBaseURL(&r)
			if r.intn(10) > 0 {
				rev := int32(bits.Reverse32(uint32(id)))
				if rev < 0 {
					rev = -rev
				}
				url += "&channel_id=" + strconv.Itoa(int(rev))
			}
			cs.urls[id] = url
		}
	})
	return cs
}

// nexmarkRand is a splitmix64 generator seeded from (seed, n).
type nexmarkRand struct{ s uint64 }

func newNexmarkRand(seed, n int64) nexmarkRand {
	r := nexmarkRand{s: uint64(seed)}
	r.s = r.next() ^ uint64(n)
	return r
}

func (r *nexmarkRand) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// int63n is uniform in [0, bound) (bound > 0): the high word of a 64x64
// bit product (Lemire's method without the rejection step: a bias below
// bound/2^64, and no division).
func (r *nexmarkRand) int63n(bound int64) int64 {
	if bound <= 1 {
		return 0
	}
	hi, _ := bits.Mul64(r.next(), uint64(bound))
	return int64(hi)
}

func (r *nexmarkRand) intn(bound int) int { return int(r.int63n(int64(bound))) }

func (r *nexmarkRand) float64() float64 { return float64(r.next()>>11) / (1 << 53) }

// price is Nexmark's price in cents: 10^(6u) dollars rounded, u uniform in [0, 1).
func (r *nexmarkRand) price() int64 {
	return int64(math.Round(math.Exp(r.float64()*6*math.Ln10) * 100))
}

// str is a string of 3 to maxLen-1 letters and spaces, trimmed (Beam's nextString).
func (r *nexmarkRand) str(maxLen int) string { return r.strWith(maxLen, ' ') }

// strWith is str with special instead of spaces (not trimmed unless a
// space). Each character takes one random word: 1 in 13 is special, the
// rest a letter drawn from the word's other bits.
func (r *nexmarkRand) strWith(maxLen int, special byte) string {
	n := 3 + r.intn(maxLen-3)
	var b strings.Builder
	b.Grow(n)
	for range n {
		v := r.next()
		if v%13 == 0 {
			b.WriteByte(special)
		} else {
			b.WriteByte(byte('a' + (v/13)%26))
		}
	}
	if special != ' ' {
		return b.String()
	}
	return strings.TrimSpace(b.String())
}

// strLen draws what str(maxLen) draws and returns the length of the
// string it would build, without building it.
func (r *nexmarkRand) strLen(maxLen int) int {
	n := 3 + r.intn(maxLen-3)
	first, last := -1, -1
	for i := range n {
		if r.next()%13 != 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return 0
	}
	return last - first + 1
}

// skip advances the generator past n draws (splitmix64's state only
// counts them).
func (r *nexmarkRand) skip(n int) { r.s += uint64(n) * 0x9e3779b97f4a7c15 }

// exact is a string of n letters, 12 from each random word (26^12 < 2^64).
func (r *nexmarkRand) exact(n int) string {
	var b strings.Builder
	b.Grow(n)
	for n > 0 {
		v := r.next()
		for k := 0; k < 12 && n > 0; k++ {
			b.WriteByte(byte('a' + v%26))
			v /= 26
			n--
		}
	}
	return b.String()
}

// nexmarkPadding holds the random letters extra strings are cut from: a
// substring shares the pool's memory, so padding an event costs neither an
// allocation nor a random draw per byte, only one for its offset. (The
// extras of different events overlap; queries do not read them, they only
// make the events the size Nexmark's are.)
var nexmarkPadding = func() string {
	r := newNexmarkRand(0x6e65786d61726b, 0)
	return r.exact(1 << 16)
}()

// extra pads an event to about avg bytes on average (Beam's nextExtra).
func (r *nexmarkRand) extra(size, avg int) string {
	if size > avg {
		return ""
	}
	avg -= size
	delta := int(math.Round(float64(avg) * 0.2))
	n := avg - delta
	if delta > 0 {
		n += r.intn(2 * delta)
	}
	off := r.intn(len(nexmarkPadding) - n + 1)
	return nexmarkPadding[off : off+n]
}
