package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPU per side over the measured window (send + drain; roomlist: its timed
// phases). The rule: a latency figure is only worth quoting when the
// machine was the server's and the generator's, so each run says what else
// ran. Three figures, each in percent of one core:
//
//   - server: user+system time of every process this run started on the
//     server side (the instances, and in --mode kafka Kafka and FerretDB),
//     from /proc/<pid>/stat, their reaped children included;
//   - generator: this process's own (getrusage RUSAGE_SELF: the servers are
//     its children, but they are reaped after the window, so RUSAGE_CHILDREN
//     would add nothing or, later, everything);
//   - other: the busy time /proc/stat counts on the CPUs those processes
//     were allowed to run on, minus the two. Busy is every column but idle
//     and iowait: user, nice, system, irq, softirq and steal (time the
//     hypervisor gave to another guest is time this run did not get).
//
// With the kernel's tick accounting (CONFIG_IRQ_TIME_ACCOUNTING off, as on
// the benchmark machine) interrupt time is charged to the process it
// interrupted too, so loopback softirqs raised by our own sends count as
// ours. With it on, that time is in no process's and shows as other:
// irq_cpu_pct says how much of the busy time it was.

// cleanLimitPct is the bound: a run during which other processes
// took more than this share of a core is not called clean.
const cleanLimitPct = 15.0

// userHZ is the unit of the tick counts in /proc/stat and /proc/<pid>/stat:
// USER_HZ, which the kernel keeps at 100 on every architecture Go runs on
// whatever its internal tick rate (CONFIG_HZ).
const userHZ = 100

// cpuLine is one cpu or cpuN line of /proc/stat, in ticks.
type cpuLine struct {
	busy  uint64 // user+nice+system+irq+softirq+steal
	irq   uint64 // irq+softirq
	steal uint64
}

// parseProcStat reads /proc/stat's CPU lines: the aggregate "cpu" line under
// key -1, "cpuN" under N. The columns are user nice system idle iowait irq
// softirq steal guest guest_nice; guest time is already in user, so it is
// not added again. Older kernels print fewer columns: those missing count 0.
func parseProcStat(b []byte) (map[int]cpuLine, error) {
	out := map[int]cpuLine{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 5 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		n := -1
		if id := f[0][3:]; id != "" {
			v, err := strconv.Atoi(id)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("/proc/stat: bad CPU line %q", line)
			}
			n = v
		}
		var col [8]uint64
		for i := 0; i < len(col) && i+1 < len(f); i++ {
			v, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/stat: bad CPU line %q", line)
			}
			col[i] = v
		}
		user, nice, system, irq, softirq, steal := col[0], col[1], col[2], col[5], col[6], col[7]
		out[n] = cpuLine{busy: user + nice + system + irq + softirq + steal, irq: irq + softirq, steal: steal}
	}
	if _, ok := out[-1]; !ok {
		return nil, errors.New("/proc/stat: no cpu line")
	}
	return out, nil
}

// parsePidStat reads the user+system ticks of a process from its
// /proc/<pid>/stat, its reaped children's (cutime, cstime) included. The
// command name, field 2, is in parentheses and may itself hold spaces and
// parentheses: the fields are counted from the last ')'.
func parsePidStat(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime, stime, cutime, cstime are fields
	// 14-17. cutime and cstime are signed in the kernel's format.
	if len(f) < 15 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 15", len(f))
	}
	var sum uint64
	for k, s := range f[11:15] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("field %d: %q is not a tick count", 14+k, s)
		}
		sum += uint64(v)
	}
	return sum, nil
}

// procTicks is parsePidStat of a running process.
func procTicks(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	t, err := parsePidStat(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return t, nil
}

// selfCPU is this process's user+system time.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// cpuSample is one reading of every counter the meter compares.
type cpuSample struct {
	at       time.Time
	servers  []uint64 // ticks, by meter.servers
	services []uint64 // ticks, by meter.services
	self     time.Duration
	selfOK   bool
	stat     map[int]cpuLine
}

// cpuMeter measures the CPU of both sides and of the rest of the machine
// between start and stop.
type cpuMeter struct {
	servers  []int // pids of the instances
	services []int // pids of Kafka and FerretDB (--mode kafka)
	// lines are the /proc/stat lines counted: the CPUs any measured process
	// was allowed on (nil: the aggregate line, every CPU). Processes of
	// others on the rest of the machine do not slow this run.
	lines []int
	start cpuSample
	err   error // from start: the figures are not known
}

// startCPU takes the first sample. servers and services may be empty (with
// --mode target the servers are not this run's: their CPU is not known).
func startCPU(servers, services []int) *cpuMeter {
	m := &cpuMeter{servers: servers, services: services}
	m.lines = measuredCPUs(append(append([]int{}, servers...), services...))
	m.start, m.err = m.sample()
	return m
}

// measuredCPUs is the union of the CPUs the processes (and this one) may
// run on, or nil when one is not known or the union is every online CPU.
func measuredCPUs(pids []int) []int {
	set := map[int]bool{}
	for _, p := range append([]string{"self"}, pidStrings(pids)...) {
		l := cpusAllowed(p)
		cpus, err := parseCPUList(l)
		if l == "" || err != nil {
			return nil
		}
		for _, n := range cpus {
			set[n] = true
		}
	}
	if online, err := onlineCPUs(); err == nil {
		all := true
		for n := range online {
			all = all && set[n]
		}
		if all {
			return nil
		}
	}
	var out []int
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func pidStrings(pids []int) []string {
	var out []string
	for _, p := range pids {
		out = append(out, strconv.Itoa(p))
	}
	return out
}

// sample reads every counter: this process's and the machine's first, so
// that a server that exited (its /proc entry gone) still leaves the
// generator's figure; err then names the failed reading.
func (m *cpuMeter) sample() (s cpuSample, err error) {
	s.at = time.Now()
	if s.self, err = selfCPU(); err != nil {
		return s, err
	}
	s.selfOK = true
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	if s.stat, err = parseProcStat(b); err != nil {
		return s, err
	}
	for _, group := range []struct {
		pids []int
		into *[]uint64
	}{{m.servers, &s.servers}, {m.services, &s.services}} {
		for _, pid := range group.pids {
			t, err := procTicks(pid)
			if err != nil {
				return s, err
			}
			*group.into = append(*group.into, t)
		}
	}
	return s, nil
}

// cpuFigures are the meter's result, in percent of one core over the window.
type cpuFigures struct {
	WindowS float64
	// Known: the servers' figures (and so other's) were measured; false
	// with --mode target or when a reading failed (Why says which).
	Known bool
	Why   string
	// Server is Instances + Services; ServerSeconds is Server in CPU seconds.
	Server, Instances, Services float64
	ServerSeconds               float64
	Gen, Other                  float64
	// Irq and Steal are the parts of the busy time that were interrupts and
	// time taken by the hypervisor.
	Irq, Steal float64
	// Lines are the CPUs counted, as a list ("" = all).
	Lines string
}

// stop takes the second sample and returns the figures.
func (m *cpuMeter) stop() cpuFigures {
	end, err := m.sample()
	if err == nil {
		err = m.err
	}
	return figuresOf(m.start, end, m.lines, len(m.servers) > 0, err)
}

// figuresOf compares two samples. haveServers is false when the servers are
// not this run's (their CPU is then in other, so other is not known either).
func figuresOf(a, b cpuSample, lines []int, haveServers bool, err error) cpuFigures {
	win := b.at.Sub(a.at).Seconds()
	f := cpuFigures{WindowS: round(win, 2), Lines: formatCPUList(lines)}
	if win <= 0 {
		f.Why = "the window was empty"
		return f
	}
	pct := func(seconds float64) float64 { return round(100*seconds/win, 1) }
	if a.selfOK && b.selfOK {
		f.Gen = pct((b.self - a.self).Seconds())
	}
	switch {
	case err != nil:
		f.Why = "reading the CPU counters failed: " + err.Error()
		return f
	case !haveServers:
		f.Why = "the servers were not started by this run (--mode target): their CPU, and so the other processes', is not known"
		return f
	}
	ticks := func(x, y []uint64) (sum float64) {
		for i := range x {
			if y[i] >= x[i] {
				sum += float64(y[i] - x[i])
			}
		}
		return sum / userHZ
	}
	inst, svc := ticks(a.servers, b.servers), ticks(a.services, b.services)
	var busy, irq, steal float64
	sumLines := func(n int) {
		la, lb := a.stat[n], b.stat[n]
		busy += float64(lb.busy-la.busy) / userHZ
		irq += float64(lb.irq-la.irq) / userHZ
		steal += float64(lb.steal-la.steal) / userHZ
	}
	if lines == nil {
		sumLines(-1)
	} else {
		for _, n := range lines {
			sumLines(n)
		}
	}
	gen := (b.self - a.self).Seconds()
	f.Known = true
	f.ServerSeconds = inst + svc
	f.Server, f.Instances, f.Services = pct(inst+svc), pct(inst), pct(svc)
	f.Irq, f.Steal = pct(irq), pct(steal)
	// The machine's busy ticks and the processes' run times are counted
	// apart (ticks sampled against exact run time): over a short window
	// they may differ by a tick or two either way, which must not read as
	// a negative share.
	f.Other = max(pct(busy-inst-svc-gen), 0)
	return f
}

// cleanOf is the rule on the figure as reported: not clean when
// other processes took more than cleanLimitPct of a core, or when that is
// not known. unclean says why in a sentence.
func cleanOf(f cpuFigures) (clean bool, unclean string) {
	if !f.Known {
		return false, f.Why
	}
	if f.Other > cleanLimitPct {
		return false, fmt.Sprintf("other processes took %.1f %% of a core (a clean run allows %.0f %%)", f.Other, cleanLimitPct)
	}
	return true, ""
}

// apply puts the figures into the result, with the server's CPU per
// message sent and per delivery.
func (f cpuFigures) apply(res *Result) {
	res.CPUWindowS = f.WindowS
	res.GenCPUPct = f.Gen
	res.CPULines = f.Lines
	if res.CPULines == "" {
		res.CPULines = "all"
	}
	res.Clean, res.Unclean = cleanOf(f)
	if !f.Known {
		res.ServerCPUPct, res.OtherCPUPct = -1, -1
		return
	}
	res.ServerCPUPct, res.OtherCPUPct = f.Server, f.Other
	res.ServicesCPUPct = f.Services
	res.IrqCPUPct, res.StealCPUPct = f.Irq, f.Steal
	if res.Sent > 0 {
		res.ServerCPUUsPerMsg = round(f.ServerSeconds*1e6/float64(res.Sent), 2)
	}
	if res.Delivered > 0 {
		res.ServerCPUUsPerDelivery = round(f.ServerSeconds*1e6/float64(res.Delivered), 2)
	}
}

func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}
