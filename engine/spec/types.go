// Package spec holds the dataflow part of a FlinkJob: the runtime mode and the
// named steps with their inputs. It is the single definition shared by the CRD
// (api/v1alpha1 embeds these types, so the kubebuilder markers here shape the
// generated schema), the local CLI, the planner and the workers. It imports no
// Kubernetes package so the engine stays usable on its own.
//
// +kubebuilder:object:generate=true
package spec

// RuntimeMode selects how a job runs, as in Flink's execution.runtime-mode.
// +kubebuilder:validation:Enum=STREAMING;BATCH;AUTOMATIC
type RuntimeMode string

const (
	// Streaming runs every stage at once with pipelined shuffles and
	// incremental results.
	Streaming RuntimeMode = "STREAMING"
	// Batch runs stage after stage with blocking shuffles, sorted keyed input
	// and final results only. Every source must be bounded.
	Batch RuntimeMode = "BATCH"
	// Automatic resolves to BATCH when every source is bounded, else STREAMING.
	Automatic RuntimeMode = "AUTOMATIC"
)

// ProcessingTimeBehavior says what BATCH does when a step registers a
// processing-time timer, which has no meaning on bounded, sorted input.
// +kubebuilder:validation:Enum=FAIL;IGNORE
type ProcessingTimeBehavior string

const (
	// ProcessingTimeFail fails the job with an error naming the step.
	ProcessingTimeFail ProcessingTimeBehavior = "FAIL"
	// ProcessingTimeIgnore drops processing-time timers silently.
	ProcessingTimeIgnore ProcessingTimeBehavior = "IGNORE"
)

// Job is the dataflow of one job: everything the engine needs to plan and run it.
type Job struct {
	// runtimeMode is STREAMING (default), BATCH or AUTOMATIC (BATCH when every
	// source is bounded, else STREAMING).
	// +kubebuilder:default=STREAMING
	// +optional
	RuntimeMode RuntimeMode `json:"runtimeMode,omitempty"`

	// parallelism is the default number of parallel subtasks of every step.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1024
	// +kubebuilder:default=1
	// +optional
	Parallelism int32 `json:"parallelism,omitempty"`

	// batchProcessingTime says what BATCH does when a step registers a
	// processing-time timer: FAIL (default) or IGNORE.
	// +kubebuilder:default=FAIL
	// +optional
	BatchProcessingTime ProcessingTimeBehavior `json:"batchProcessingTime,omitempty"`

	// bufferTimeout bounds how long a STREAMING subtask keeps a partly
	// filled output batch before sending it on (Flink's
	// execution.buffer-timeout): lower means lower latency, higher means
	// fewer, fuller batches. Full batches go at once. Default 5ms.
	// +optional
	BufferTimeout Duration `json:"bufferTimeout,omitempty"`

	// steps is the dataflow: named steps, each reading the steps named in its
	// inputs (the previous step when inputs is empty).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +listType=atomic
	Steps []Step `json:"steps"`
}

// Step is one node of the dataflow. Exactly one kind field (source, map,
// filter, flatMap, keyBy, reduce, aggregate, window, union, join, process,
// call, sink) is set; keyBy may also accompany reduce, aggregate, window or process
// to key their input in the same step. Per-record logic is written in CEL:
// `record` is the incoming record.
// +kubebuilder:validation:XValidation:rule="[has(self.source), has(self.map), has(self.filter), has(self.flatMap), has(self.reduce), has(self.aggregate), has(self.window), has(self.union), has(self.join), has(self.process), has(self.sink), has(self.call)].filter(x, x).size() <= 1",message="a step sets at most one of source, map, filter, flatMap, reduce, aggregate, window, union, join, process, sink, call"
type Step struct {
	// name identifies the step; other steps list it in their inputs.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// inputs names the steps (or side outputs) this step reads. Empty means the
	// previous step in the list. Only union, join and process read several.
	// +optional
	// +listType=atomic
	Inputs []string `json:"inputs,omitempty"`

	// parallelism overrides the job's default for this step. A change of
	// parallelism between steps cuts the chain and redistributes round robin.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1024
	// +optional
	Parallelism *int32 `json:"parallelism,omitempty"`

	// partitioning says how this step's input is distributed to its subtasks:
	// FORWARD (default: keep the upstream subtask, chained), REBALANCE (round
	// robin) or BROADCAST (every record to every subtask). keyBy implies HASH.
	// +optional
	Partitioning Partitioning `json:"partitioning,omitempty"`

	// source reads records into the job.
	// +optional
	Source *Source `json:"source,omitempty"`
	// map is a CEL expression computing the output record from `record`.
	// +optional
	Map string `json:"map,omitempty"`
	// filter is a CEL expression over `record`; records where it is false are dropped.
	// +optional
	Filter string `json:"filter,omitempty"`
	// flatMap is a CEL expression returning a list; each element becomes a record.
	// +optional
	FlatMap string `json:"flatMap,omitempty"`
	// call names a Go function registered in the worker image (the Go SDK)
	// that processes each record, for logic CEL cannot express.
	// +optional
	Call string `json:"call,omitempty"`
	// keyBy is a CEL expression computing the key of `record`. Alone it makes
	// a keyed stream for the next step; with reduce, aggregate, window or
	// process it keys that step's input.
	// +optional
	KeyBy string `json:"keyBy,omitempty"`
	// reduce is a rolling reduce over a keyed stream: a CEL expression combining
	// the accumulated record `acc` with the new `record`. STREAMING emits the
	// updated value per record; BATCH emits only the final value per key.
	// +optional
	Reduce string `json:"reduce,omitempty"`
	// aggregate is a rolling aggregation over a keyed stream.
	// +optional
	Aggregate *Aggregate `json:"aggregate,omitempty"`
	// window groups a keyed stream into event-time windows and aggregates each.
	// +optional
	Window *Window `json:"window,omitempty"`
	// union merges all inputs into one stream.
	// +optional
	Union *Union `json:"union,omitempty"`
	// join joins two keyed inputs (a window join or an interval join).
	// +optional
	Join *Join `json:"join,omitempty"`
	// process is a keyed process function with state and timers.
	// +optional
	Process *Process `json:"process,omitempty"`
	// sink writes records out of the job.
	// +optional
	Sink *Sink `json:"sink,omitempty"`
}

// Partitioning is how records travel from one step to the next.
// +kubebuilder:validation:Enum=FORWARD;REBALANCE;BROADCAST
type Partitioning string

const (
	Forward   Partitioning = "FORWARD"
	Rebalance Partitioning = "REBALANCE"
	Broadcast Partitioning = "BROADCAST"
	// Hash is set by keyBy; it is not written in manifests.
	Hash Partitioning = "HASH"
)

// Source reads records. Exactly one of elements, datagen, files, nexmark,
// kafka is set. The CRD rule can only check datagen, files and nexmark against each
// other: elements hold any JSON value, so they have no CEL type; the planner
// checks the rest.
// +kubebuilder:validation:XValidation:rule="(has(self.datagen) ? 1 : 0) + (has(self.files) ? 1 : 0) + (has(self.nexmark) ? 1 : 0) + (has(self.kafka) ? 1 : 0) <= 1",message="a source sets exactly one of elements, datagen, files, nexmark, kafka"
type Source struct {
	// elements are inline records (bounded).
	// +optional
	// +listType=atomic
	Elements []Value `json:"elements,omitempty"`
	// datagen generates records from a sequence number (bounded with count,
	// unbounded without).
	// +optional
	Datagen *Datagen `json:"datagen,omitempty"`
	// files reads files under a local path or an s3:// URL (bounded, or
	// unbounded with monitorInterval).
	// +optional
	Files *FileSource `json:"files,omitempty"`
	// nexmark generates the Nexmark benchmark's events (persons, auctions
	// and bids); bounded with events, unbounded without.
	// +optional
	Nexmark *Nexmark `json:"nexmark,omitempty"`
	// kafka reads Kafka topics (unbounded, or bounded with stoppingOffsets).
	// +optional
	Kafka *KafkaSource `json:"kafka,omitempty"`
	// timestamp is a CEL expression giving the event time of `record` in
	// milliseconds since the epoch (an int or a timestamp).
	// +optional
	Timestamp string `json:"timestamp,omitempty"`
	// watermarks is the watermark strategy (STREAMING only; BATCH ignores it).
	// +optional
	Watermarks *Watermarks `json:"watermarks,omitempty"`
	// malformedOutput names a side output receiving the records this source
	// cannot read (files: a jsonl line that is not JSON, a csv row that does
	// not fit, a record that does not fit the schema; kafka: a key or value
	// its format cannot decode) and those whose timestamp expression fails,
	// instead of failing the job. Each is {error, raw, location}: the
	// message the job would have failed with, the line or message value (a
	// string, or bytes when not UTF-8) and "<file>:<line>" or
	// "<topic>/<partition>@<offset>". Other steps can list it in their
	// inputs. Files and kafka sources only; absent fails the job.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	MalformedOutput string `json:"malformedOutput,omitempty"`
}

// Datagen generates records. `seq` is the record's sequence number, from 0.
type Datagen struct {
	// value is a CEL expression over `seq` (an int) computing each record.
	// +kubebuilder:validation:MinLength=1
	Value string `json:"value"`
	// count bounds the source to this many records; absent means unbounded.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Count *int64 `json:"count,omitempty"`
	// ratePerSecond limits the rate over all subtasks; 0 or absent means as fast as possible.
	// +kubebuilder:validation:Minimum=0
	// +optional
	RatePerSecond int64 `json:"ratePerSecond,omitempty"`
}

// Nexmark generates the events of the Nexmark benchmark like its standard
// generator (Apache Beam's and nexmark/nexmark's): event n is a person, an
// auction or a bid in the proportions 1:3:46, with ids, hot auctions,
// sellers and bidders derived from n. Each event is computed from (seed, n)
// alone, so the output is the same at any parallelism. Records are maps
// {"type": "person"|"auction"|"bid", "ts": ms, "person"|"auction"|"bid": {...}}
// with Nexmark's field names; ts and dateTime are event time in ms from
// 2015-07-15T00:00:00Z.
type Nexmark struct {
	// events bounds the source to this many events; absent means unbounded.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Events *int64 `json:"events,omitempty"`
	// ratePerSecond limits the events per second over all subtasks; 0 or absent means as fast as possible.
	// +kubebuilder:validation:Minimum=0
	// +optional
	RatePerSecond int64 `json:"ratePerSecond,omitempty"`
	// seed varies the generated values (not the ids or proportions).
	// +optional
	Seed int64 `json:"seed,omitempty"`
	// firstEventRate is the event-time rate in events per second: event n
	// has timestamp base + n*1000/firstEventRate ms (default 10000).
	// +kubebuilder:validation:Minimum=1
	// +optional
	FirstEventRate int64 `json:"firstEventRate,omitempty"`
	// hotAuctionRatio: 1 - 1/hotAuctionRatio of the bids go to a hot auction (default 2).
	// +kubebuilder:validation:Minimum=1
	// +optional
	HotAuctionRatio int64 `json:"hotAuctionRatio,omitempty"`
	// hotSellerRatio: 1 - 1/hotSellerRatio of the auctions have a hot seller (default 4).
	// +kubebuilder:validation:Minimum=1
	// +optional
	HotSellerRatio int64 `json:"hotSellerRatio,omitempty"`
	// hotBidderRatio: 1 - 1/hotBidderRatio of the bids come from a hot bidder (default 4).
	// +kubebuilder:validation:Minimum=1
	// +optional
	HotBidderRatio int64 `json:"hotBidderRatio,omitempty"`
	// activePeople is how many of the latest persons sell and bid (default 1000).
	// +kubebuilder:validation:Minimum=1
	// +optional
	ActivePeople int64 `json:"activePeople,omitempty"`
	// inFlightAuctions is how many of the latest auctions receive bids (default 100).
	// +kubebuilder:validation:Minimum=1
	// +optional
	InFlightAuctions int64 `json:"inFlightAuctions,omitempty"`
}

// Format is a file format for files sources and sinks.
// +kubebuilder:validation:Enum=text;jsonl;csv;parquet
type Format string

const (
	FormatText    Format = "text"
	FormatJSONL   Format = "jsonl"
	FormatCSV     Format = "csv"
	FormatParquet Format = "parquet"
)

// FieldType is the type of a schema field. Records carry int as int64,
// double as float64, bytes as bytes and timestamp as int milliseconds since
// the epoch (what source.timestamp and CEL arithmetic expect); text formats
// write timestamps as RFC 3339 and read RFC 3339 or epoch milliseconds.
// +kubebuilder:validation:Enum=string;int;double;bool;timestamp;bytes
type FieldType string

const (
	TypeString    FieldType = "string"
	TypeInt       FieldType = "int"
	TypeDouble    FieldType = "double"
	TypeBool      FieldType = "bool"
	TypeTimestamp FieldType = "timestamp"
	TypeBytes     FieldType = "bytes"
)

// SchemaField is one field (column) of a file schema.
type SchemaField struct {
	// name is the field's name in records (and the column's in the file).
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// type is string, int, double, bool, timestamp or bytes.
	Type FieldType `json:"type"`
	// nullable allows the field to be null or missing; otherwise a record
	// without it is malformed.
	// +optional
	Nullable bool `json:"nullable,omitempty"`
}

// FileSource reads files.
// +kubebuilder:validation:XValidation:rule="!has(self.format) || self.format != 'parquet' || !has(self.schema)",message="a parquet source reads the schema stored in each file; remove schema",fieldPath=".schema",reason=FieldValueForbidden
type FileSource struct {
	// path is a file or a directory (local, or s3://bucket/prefix/).
	// +kubebuilder:validation:MinLength=1
	Path string `json:"path"`
	// format is text (one record {"line": ...} per line), jsonl, csv or
	// parquet (its schema is read from each file).
	// +kubebuilder:default=text
	// +optional
	Format Format `json:"format,omitempty"`
	// csv options for format csv.
	// +optional
	CSV *CSVOptions `json:"csv,omitempty"`
	// schema types the fields of jsonl and csv records: cells and values
	// are converted to the declared types, records keep only the declared
	// fields, and a record that does not fit fails the job naming the file
	// and line. Not allowed with parquet (its files carry their schema).
	// +optional
	// +listType=map
	// +listMapKey=name
	Schema []SchemaField `json:"schema,omitempty"`
	// monitorInterval makes the source continuous (unbounded): the path is
	// listed again at this interval and files that appeared since are read,
	// each once. Absent, the files present at the start are read and the
	// source ends.
	// +optional
	MonitorInterval Duration `json:"monitorInterval,omitempty"`
	// s3 reaches an s3:// path with this source's own endpoint and
	// credentials (from Secrets) instead of the job's storage settings.
	// +optional
	S3 *FileS3 `json:"s3,omitempty"`
}

// CSVOptions describes CSV files.
type CSVOptions struct {
	// header says the first line names the columns; otherwise columns are c0, c1, ...
	// +optional
	Header bool `json:"header,omitempty"`
	// delimiter is one character; default ",".
	// +kubebuilder:validation:MaxLength=1
	// +optional
	Delimiter string `json:"delimiter,omitempty"`
	// columns names the columns (in order) when the file has no header, or
	// when the sink writes CSV.
	// +optional
	// +listType=atomic
	Columns []string `json:"columns,omitempty"`
}

// Watermarks is a watermark strategy, as Flink's WatermarkStrategy.
type Watermarks struct {
	// maxOutOfOrderness is how far behind the largest timestamp seen the
	// watermark trails (bounded out-of-orderness). "0s" means monotonous timestamps.
	// +optional
	MaxOutOfOrderness Duration `json:"maxOutOfOrderness,omitempty"`
	// idleness marks a source subtask idle when it has produced nothing for
	// this long, so it does not hold back the watermark downstream.
	// +optional
	Idleness Duration `json:"idleness,omitempty"`
}

// Duration is a Go duration string such as "500ms", "5s" or "1m".
// +kubebuilder:validation:Type=string
// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
type Duration string

// Aggregate is a set of named aggregations of one keyed input. The output
// record holds `key` and one field per aggregation.
type Aggregate struct {
	// fields are the aggregations, each writing one output field.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Fields []AggregateField `json:"fields"`
}

// AggregateField is one aggregation: exactly one of count, sum, min, max, avg, accumulator.
// +kubebuilder:validation:XValidation:rule="[has(self.count), has(self.sum), has(self.min), has(self.max), has(self.avg), has(self.accumulator)].filter(x, x).size() == 1",message="an aggregate field sets exactly one of count, sum, min, max, avg, accumulator"
type AggregateField struct {
	// name is the output field.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// count counts records.
	// +optional
	Count bool `json:"count,omitempty"`
	// sum is a CEL expression summed over records.
	// +optional
	Sum string `json:"sum,omitempty"`
	// min is a CEL expression whose smallest value is kept.
	// +optional
	Min string `json:"min,omitempty"`
	// max is a CEL expression whose largest value is kept.
	// +optional
	Max string `json:"max,omitempty"`
	// avg is a CEL expression averaged over records (a double).
	// +optional
	Avg string `json:"avg,omitempty"`
	// accumulator is a user-defined aggregation in CEL.
	// +optional
	Accumulator *Accumulator `json:"accumulator,omitempty"`
}

// Accumulator is a user-defined aggregate function in CEL, like Flink's AggregateFunction.
type Accumulator struct {
	// init is the empty accumulator (a CEL expression with no variables).
	Init string `json:"init"`
	// add folds `record` into `acc`.
	Add string `json:"add"`
	// merge combines accumulators `a` and `b` (needed by session windows).
	// +optional
	Merge string `json:"merge,omitempty"`
	// result turns `acc` into the output value; absent means acc itself.
	// +optional
	Result string `json:"result,omitempty"`
}

// WindowType is tumbling, sliding or session.
// +kubebuilder:validation:Enum=tumbling;sliding;session
type WindowType string

const (
	Tumbling WindowType = "tumbling"
	Sliding  WindowType = "sliding"
	Session  WindowType = "session"
)

// Window is an event-time window over a keyed stream. The output record holds
// `key`, `windowStart`, `windowEnd` (ms) and the aggregation fields, or the
// reduced record when reduce is used.
// +kubebuilder:validation:XValidation:rule="has(self.aggregate) != has(self.reduce)",message="a window sets exactly one of aggregate, reduce"
type Window struct {
	// type is tumbling, sliding or session.
	Type WindowType `json:"type"`
	// size of tumbling and sliding windows.
	// +optional
	Size Duration `json:"size,omitempty"`
	// slide of sliding windows.
	// +optional
	Slide Duration `json:"slide,omitempty"`
	// gap of session windows.
	// +optional
	Gap Duration `json:"gap,omitempty"`
	// allowedLateness keeps windows open this long after the watermark passes
	// their end; late records within it update the result (STREAMING).
	// +optional
	AllowedLateness Duration `json:"allowedLateness,omitempty"`
	// lateDataOutput names a side output receiving records too late for any
	// window; other steps can list it in their inputs.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	LateDataOutput string `json:"lateDataOutput,omitempty"`
	// aggregate computes the window's result.
	// +optional
	Aggregate *Aggregate `json:"aggregate,omitempty"`
	// reduce combines `acc` and `record` within the window.
	// +optional
	Reduce string `json:"reduce,omitempty"`
}

// Union merges its inputs. It has no options.
type Union struct{}

// Join joins two inputs by key: the first input is `left`, the second `right`.
// +kubebuilder:validation:XValidation:rule="has(self.window) != has(self.interval)",message="a join sets exactly one of window, interval"
type Join struct {
	// leftKey is a CEL expression giving the key of a left `record`.
	LeftKey string `json:"leftKey"`
	// rightKey is a CEL expression giving the key of a right `record`.
	RightKey string `json:"rightKey"`
	// window makes a window join: pairs with equal keys in the same window.
	// Session windows are not supported.
	// +optional
	Window *JoinWindow `json:"window,omitempty"`
	// interval makes an interval join: pairs where
	// left.ts + lowerBound <= right.ts <= left.ts + upperBound.
	// +optional
	Interval *JoinInterval `json:"interval,omitempty"`
	// select is a CEL expression over `left` and `right` (and `key`) building
	// the output record; default {"left": left, "right": right}.
	// +optional
	Select string `json:"select,omitempty"`
}

// JoinWindow is the window of a window join.
type JoinWindow struct {
	// type is tumbling or sliding.
	// +kubebuilder:validation:Enum=tumbling;sliding
	Type WindowType `json:"type"`
	// size of the windows.
	Size Duration `json:"size"`
	// slide of sliding windows.
	// +optional
	Slide Duration `json:"slide,omitempty"`
}

// JoinInterval bounds an interval join; bounds may be negative ("-5s").
type JoinInterval struct {
	// lowerBound is the earliest right timestamp that joins, relative to
	// the left record's (inclusive): "-5s" pairs right records up to 5 s
	// before the left one.
	// +kubebuilder:validation:Pattern=`^-?([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	LowerBound string `json:"lowerBound"`
	// upperBound is the latest right timestamp that joins, relative to the
	// left record's (inclusive); at least lowerBound.
	// +kubebuilder:validation:Pattern=`^-?([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	UpperBound string `json:"upperBound"`
}

// Process is a keyed process function, like Flink's KeyedProcessFunction.
// Each expression returns a map whose optional fields are actions:
// `emit` (a list of records), `state` (the key's new state; null clears it),
// `timers` (event-time timestamps in ms) and `processingTimers` (wall-clock ms).
// Variables: `record`, `key`, `state` (null when unset), `ts` (the record's
// timestamp), `input` (the input's name), `watermark` (current event time),
// `broadcast` (the broadcast state, null when unset).
// An input with partitioning BROADCAST makes it Flink's
// KeyedBroadcastProcessFunction: every subtask sees every record of that
// input, which has no key, so it may not set `state` or timers; it may
// return `broadcast`, the new broadcast state (the same on every subtask,
// checkpointed), which every record then reads.
type Process struct {
	// onElement runs for every record.
	OnElement string `json:"onElement"`
	// onTimer runs when a timer fires; `timer` is its time and `timeDomain`
	// is "event" or "processing".
	// +optional
	OnTimer string `json:"onTimer,omitempty"`
}

// Sink writes records out. Exactly one of print, files, discard, call, kafka
// is set.
// +kubebuilder:validation:XValidation:rule="[has(self.print), has(self.files), has(self.discard), has(self.call), has(self.kafka)].filter(x, x).size() == 1",message="a sink sets exactly one of print, files, discard, call, kafka"
type Sink struct {
	// print writes records as JSON lines to the standard output.
	// +optional
	Print *PrintSink `json:"print,omitempty"`
	// files writes part files under a local path or an s3:// URL.
	// +optional
	Files *FileSink `json:"files,omitempty"`
	// discard drops records (for benchmarks).
	// +optional
	Discard *DiscardSink `json:"discard,omitempty"`
	// call names a sink registered in the worker image (the Go SDK).
	// +optional
	Call string `json:"call,omitempty"`
	// kafka writes records to Kafka.
	// +optional
	Kafka *KafkaSink `json:"kafka,omitempty"`
}

// PrintSink prints records.
type PrintSink struct {
	// prefix is written before each record.
	// +optional
	Prefix string `json:"prefix,omitempty"`
}

// DiscardSink drops records. It has no options.
type DiscardSink struct{}

// FileSink writes part files, then a _SUCCESS marker when the job finishes.
// Part files are staged under path/_pending/ (hidden from readers) and made
// visible under their final names part-<subtask>-<checkpoint>-<n>.<ext>:
// in STREAMING with checkpoints, when the checkpoint that covers them
// completes (exactly once across failures: two-phase commit); at the end of
// a bounded job otherwise. A STREAMING job without checkpoints that never
// ends never makes its output visible, as with Flink's FileSink.
// +kubebuilder:validation:XValidation:rule="!has(self.format) || self.format != 'parquet' || (has(self.schema) && size(self.schema) > 0)",message="a parquet sink needs a schema (the files' columns)",fieldPath=".schema",reason=FieldValueRequired
type FileSink struct {
	// path is a directory (local, or s3://bucket/prefix/).
	// +kubebuilder:validation:MinLength=1
	Path string `json:"path"`
	// format is text (the `line` field, or the record itself when it is a
	// string), jsonl, csv or parquet (needs schema).
	// +kubebuilder:default=jsonl
	// +optional
	Format Format `json:"format,omitempty"`
	// csv options for format csv.
	// +optional
	CSV *CSVOptions `json:"csv,omitempty"`
	// schema is the fields to write: required for parquet (the file's
	// schema), optional for jsonl and csv (records are checked and
	// converted to it; csv columns default to its field names).
	// +optional
	// +listType=map
	// +listMapKey=name
	Schema []SchemaField `json:"schema,omitempty"`
	// rollingPolicy says when a subtask starts its next part file. Parts
	// also roll at every checkpoint.
	// +optional
	RollingPolicy *RollingPolicy `json:"rollingPolicy,omitempty"`
	// s3 reaches an s3:// path with this sink's own endpoint and
	// credentials (from Secrets) instead of the job's storage settings.
	// +optional
	S3 *FileS3 `json:"s3,omitempty"`
}

// RollingPolicy says when a file sink starts a new part file, as Flink's
// DefaultRollingPolicy.
type RollingPolicy struct {
	// maxPartSize is the size in bytes at which a part is finished
	// (default 128 MiB).
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxPartSize int64 `json:"maxPartSize,omitempty"`
	// rolloverInterval is the longest time a part stays open; the part is
	// finished at the first record after it (default: no limit).
	// +optional
	RolloverInterval Duration `json:"rolloverInterval,omitempty"`
}
