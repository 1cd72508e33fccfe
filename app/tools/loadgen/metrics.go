package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// serverFigures are the servers' own counts, summed over the targets'
// /metrics: what the store took and how far the persist stage is behind.
type serverFigures struct {
	persisted  float64 // parley_messages_persisted_total
	persistLag float64 // parley_consumer_lag{group="parley-persist"}
	fanoutLag  float64 // parley_consumer_lag{group="parley-fanout-…"}
	notifyLag  float64 // parley_consumer_lag{group="parley-notify"}
	// The fullest instance's descriptors: process_open_fds of
	// process_max_fds (the server's file limit).
	openFDs, maxFDs float64
	fullest         string
	// Summed over instances: the Go heap and stacks in use and the
	// goroutines, which tell what a connection costs apart from the RSS.
	heapInuse, stackInuse, goroutines float64
	// Summed over instances: the Go runtime's estimate of its garbage
	// collector's CPU (go_cpu_classes_gc_total_cpu_seconds_total; -1 when
	// a server lacks it) and the processes' CPU (process_cpu_seconds_total).
	gcCPU, processCPU float64
}

// scrape reads the figures from every target; ok is false when one of them
// did not answer or lacks the series.
func (r *runner) scrape(ctx context.Context, targets []string) (f serverFigures, ok bool) {
	for _, t := range targets {
		one, err := scrapeOne(ctx, r.http, t)
		if err != nil {
			r.progress("metrics of %s: %v", t, err)
			return serverFigures{}, false
		}
		f.persisted += one.persisted
		f.persistLag += one.persistLag
		f.fanoutLag += one.fanoutLag
		f.notifyLag += one.notifyLag
		f.heapInuse += one.heapInuse
		f.stackInuse += one.stackInuse
		f.goroutines += one.goroutines
		f.processCPU += one.processCPU
		if one.gcCPU < 0 || f.gcCPU < 0 {
			f.gcCPU = -1
		} else {
			f.gcCPU += one.gcCPU
		}
		if one.maxFDs > 0 && (f.maxFDs == 0 || one.openFDs/one.maxFDs > f.openFDs/f.maxFDs) {
			f.openFDs, f.maxFDs, f.fullest = one.openFDs, one.maxFDs, t
		}
	}
	return f, true
}

func scrapeOne(ctx context.Context, hc *http.Client, base string) (serverFigures, error) {
	var f serverFigures
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	if err != nil {
		return f, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return f, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return f, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return f, err
	}
	persisted, ok := fams["parley_messages_persisted_total"]
	if !ok || len(persisted.GetMetric()) != 1 {
		return f, fmt.Errorf("no parley_messages_persisted_total")
	}
	f.persisted = persisted.GetMetric()[0].GetCounter().GetValue()
	gauge := func(name string) float64 {
		if m := fams[name].GetMetric(); len(m) == 1 {
			return m[0].GetGauge().GetValue()
		}
		return 0
	}
	f.heapInuse, f.stackInuse, f.goroutines = gauge("go_memstats_heap_inuse_bytes"), gauge("go_memstats_stack_inuse_bytes"), gauge("go_goroutines")
	f.gcCPU = -1
	if m := fams["go_cpu_classes_gc_total_cpu_seconds_total"].GetMetric(); len(m) == 1 {
		f.gcCPU = m[0].GetCounter().GetValue()
	}
	if m := fams["process_cpu_seconds_total"].GetMetric(); len(m) == 1 {
		f.processCPU = m[0].GetCounter().GetValue()
	}
	if m := fams["process_open_fds"].GetMetric(); len(m) == 1 {
		f.openFDs = m[0].GetGauge().GetValue()
	}
	if m := fams["process_max_fds"].GetMetric(); len(m) == 1 {
		f.maxFDs = m[0].GetGauge().GetValue()
	}
	lag, ok := fams["parley_consumer_lag"]
	if !ok {
		return f, fmt.Errorf("no parley_consumer_lag")
	}
	for _, m := range lag.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() != "group" {
				continue
			}
			switch v := m.GetGauge().GetValue(); {
			case l.GetValue() == "parley-persist":
				f.persistLag += v
			case strings.HasPrefix(l.GetValue(), "parley-fanout-"):
				f.fanoutLag += v
			case l.GetValue() == "parley-notify":
				f.notifyLag += v
			}
		}
	}
	return f, nil
}

// gcShare is the part of the servers' CPU their garbage collectors took
// between two scrapes, in percent (of the servers' CPU, and of one core
// over elapsed seconds); -1, -1 when not known.
func gcShare(from, to serverFigures, elapsed float64) (ofServer, ofCore float64) {
	gc, cpu := to.gcCPU-from.gcCPU, to.processCPU-from.processCPU
	if from.gcCPU < 0 || to.gcCPU < 0 || gc < 0 || cpu <= 0 || elapsed <= 0 {
		return -1, -1
	}
	return 100 * gc / cpu, 100 * gc / elapsed
}
