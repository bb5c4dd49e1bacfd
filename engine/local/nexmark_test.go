package local_test

import (
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

const nexmarkEvents = 20000

// Nexmark q1 (currency conversion) and q2 (selection) over a bounded
// nexmark source, in both modes, against results computed here straight
// from the generator function (not through the engine).
const nexmarkQ1Q2 = `
parallelism: 3
steps:
  - name: events
    source:
      nexmark: {events: 20000, seed: 7}
      timestamp: record.ts
  - name: bids
    filter: "record.type == 'bid'"
  - name: q1
    map: "{'auction': record.bid.auction, 'bidder': record.bid.bidder, 'price': record.bid.price * 908 / 1000, 'dateTime': record.bid.dateTime}"
  - name: q1out
    sink: {call: q1}
  - name: q2
    inputs: [bids]
    filter: "record.bid.auction % 123 == 0"
  - name: q2map
    map: "{'auction': record.bid.auction, 'price': record.bid.price}"
  - name: q2out
    sink: {call: q2}
`

func TestNexmarkQ1Q2(t *testing.T) {
	var q1, q2 []string
	c := connector.DefaultNexmarkConfig
	for n := int64(0); n < nexmarkEvents; n++ {
		e := c.Event(7, n)
		if e["type"] != "bid" {
			continue
		}
		b := e["bid"].(map[string]any)
		q1 = append(q1, string(value.ToJSON(map[string]any{
			"auction": b["auction"], "bidder": b["bidder"], "price": b["price"].(int64) * 908 / 1000, "dateTime": b["dateTime"],
		})))
		if b["auction"].(int64)%123 == 0 {
			q2 = append(q2, string(value.ToJSON(map[string]any{"auction": b["auction"], "price": b["price"]})))
		}
	}
	sort.Strings(q1)
	sort.Strings(q2)
	if len(q1) != nexmarkEvents/50*46 || len(q2) == 0 {
		t.Fatalf("%d q1 and %d q2 results expected", len(q1), len(q2))
	}
	forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
		out := run(t, nexmarkQ1Q2, mode, local.Options{})
		if got := out.SortedJSON("q1"); !reflect.DeepEqual(got, q1) {
			t.Errorf("q1: %d records, want %d (first %v)", len(got), len(q1), first(got))
		}
		if got := out.SortedJSON("q2"); !reflect.DeepEqual(got, q2) {
			t.Errorf("q2: %d records, want %d: %v", len(got), len(q2), first(got))
		}
		// Event time is the event's ts.
		for _, r := range out.Records("q1") {
			if r.Ts != r.Value.(map[string]any)["dateTime"] {
				t.Fatalf("record %v at ts %d", r.Value, r.Ts)
			}
		}
	})
}

func first(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

func TestNexmarkBoundedness(t *testing.T) {
	bounded := newPlan(t, "steps:\n  - name: e\n    source: {nexmark: {events: 10}}\n  - name: out\n    sink: {discard: {}}\n", spec.Automatic)
	unbounded := newPlan(t, "steps:\n  - name: e\n    source: {nexmark: {ratePerSecond: 5}}\n  - name: out\n    sink: {discard: {}}\n", spec.Automatic)
	if bounded.Mode != spec.Batch || unbounded.Mode != spec.Streaming {
		t.Errorf("AUTOMATIC resolves to %s with events, %s without", bounded.Mode, unbounded.Mode)
	}
}

func TestNexmarkInvalid(t *testing.T) {
	for _, c := range []struct {
		src, path, msg string
		mode           spec.RuntimeMode
	}{
		{"{nexmark: {}}", "spec.steps[0].source", `source "e" is unbounded (nexmark without events)`, spec.Batch},
		{"{nexmark: {events: -1}}", "spec.steps[0].source.nexmark.events", "must not be negative", spec.Streaming},
		{"{nexmark: {events: 1, ratePerSecond: -1}}", "spec.steps[0].source.nexmark.ratePerSecond", "must not be negative", spec.Streaming},
		{"{nexmark: {events: 1, hotAuctionRatio: -2}}", "spec.steps[0].source.nexmark.hotAuctionRatio", "must be at least 1", spec.Streaming},
		{"{nexmark: {events: 1, hotSellerRatio: -1}}", "spec.steps[0].source.nexmark.hotSellerRatio", "must be at least 1", spec.Streaming},
		{"{nexmark: {events: 1, hotBidderRatio: -1}}", "spec.steps[0].source.nexmark.hotBidderRatio", "must be at least 1", spec.Streaming},
		{"{nexmark: {events: 1, activePeople: -1}}", "spec.steps[0].source.nexmark.activePeople", "must be at least 1", spec.Streaming},
		{"{nexmark: {events: 1, inFlightAuctions: -1}}", "spec.steps[0].source.nexmark.inFlightAuctions", "must be at least 1", spec.Streaming},
		{"{nexmark: {events: 1, firstEventRate: -1}}", "spec.steps[0].source.nexmark.firstEventRate", "must be at least 1", spec.Streaming},
		{"{nexmark: {events: 1}, datagen: {value: seq}}", "spec.steps[0].source", "set exactly one of elements, datagen, files, nexmark", spec.Streaming},
	} {
		src := "steps:\n  - name: e\n    source: " + c.src + "\n  - name: out\n    sink: {discard: {}}\n"
		_, err := plan.New(enginetest.Parse(t, src), plan.Options{Mode: c.mode})
		var ve *plan.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: error %v, want a validation error", c.src, err)
			continue
		}
		found := false
		for _, e := range ve.Errors {
			found = found || e.Path == c.path && strings.Contains(e.Msg, c.msg)
		}
		if !found {
			t.Errorf("%s: want %s: %s, got %v", c.src, c.path, c.msg, err)
		}
	}
}
