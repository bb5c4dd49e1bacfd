package worker

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flinkjob/flinkjob/engine/connector"
)

// sourceLag exports the consumer lag of the subtask's sources that report
// one (connector.LagReporter: Kafka), as Flink's source reader metrics:
// pendingRecords per source step, and per partition the records-lag its
// Kafka consumer reports, with their maximum (records-lag-max). Collected
// at each scrape, from what the readers' fetches last told.
type sourceLag struct {
	steps   map[string]connector.LagReporter
	pending *prometheus.Desc
	lag     *prometheus.Desc
	lagMax  *prometheus.Desc
}

func newSourceLag(sources map[string]connector.Source) *sourceLag {
	c := &sourceLag{steps: map[string]connector.LagReporter{},
		pending: prometheus.NewDesc("flinkjob_worker_source_pending_records",
			"Records of the source not read yet (Flink's pendingRecords): for Kafka, the sum of the partitions' records-lag.", []string{"step"}, nil),
		lag: prometheus.NewDesc("flinkjob_worker_source_records_lag",
			"Records of a Kafka partition not read yet: its high watermark (last stable offset with read_committed) as last fetched, minus the next offset to read.", []string{"step", "topic", "partition"}, nil),
		lagMax: prometheus.NewDesc("flinkjob_worker_source_records_lag_max",
			"The largest records-lag over the source's partitions in this subtask (Flink's records-lag-max).", []string{"step"}, nil),
	}
	for name, s := range sources {
		if l, ok := s.(connector.LagReporter); ok {
			c.steps[name] = l
		}
	}
	return c
}

func (c *sourceLag) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.lag
	ch <- c.lagMax
}

func (c *sourceLag) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for step, l := range c.steps {
		lags := l.Lags(ctx)
		if len(lags) == 0 {
			continue // not reading yet
		}
		var sum, top int64
		for _, x := range lags {
			sum += x.Lag
			top = max(top, x.Lag)
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(x.Lag), step, x.Topic, strconv.Itoa(int(x.Partition)))
		}
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(sum), step)
		ch <- prometheus.MustNewConstMetric(c.lagMax, prometheus.GaugeValue, float64(top), step)
	}
}
