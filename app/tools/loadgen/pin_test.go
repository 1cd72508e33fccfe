package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/tools/testenv"
)

// procStatSample is /proc/stat as the benchmark machine prints it (2 CPUs),
// with an older kernel's short line for a third.
const procStatSample = `cpu  2019019 70476 458909 2037599 21641 0 30009 90587 0 0
cpu0 1005433 35378 223126 1033676 9092 0 12015 45004 0 0
cpu1 1013585 35098 235782 1003922 12549 0 17994 45582 0 0
cpu2 10 20 30 40
intr 70627503 0 0 0 0
ctxt 175774612
btime 1764700000
`

func TestParseProcStat(t *testing.T) {
	got, err := parseProcStat([]byte(procStatSample))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]cpuLine{
		// user+nice+system+irq+softirq+steal; idle and iowait left out.
		-1: {busy: 2019019 + 70476 + 458909 + 0 + 30009 + 90587, irq: 30009, steal: 90587},
		0:  {busy: 1005433 + 35378 + 223126 + 0 + 12015 + 45004, irq: 12015, steal: 45004},
		1:  {busy: 1013585 + 35098 + 235782 + 0 + 17994 + 45582, irq: 17994, steal: 45582},
		2:  {busy: 10 + 20 + 30},
	}
	if len(got) != len(want) {
		t.Errorf("lines %v, want %v", got, want)
	}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("cpu line %d = %+v, want %+v", n, got[n], w)
		}
	}
	for _, bad := range []string{
		"intr 1 2 3\n", // no cpu line
		"cpu  1 2 x 4 5\n",
		"cpuX 1 2 3 4 5\ncpu 1 2 3 4 5\n",
		"cpu  1 2 -3 4 5\n",
	} {
		if got, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) = %v, want an error", bad, got)
		}
	}
}

func TestParsePidStat(t *testing.T) {
	// The fields after the name: state ppid pgrp session tty tpgid flags
	// minflt cminflt majflt cmajflt utime stime cutime cstime ...
	tail := " S 1 6713 31770 0 -1 4194304 100 0 0 0 250 75 12 3 20 0 9 0 2377109 3133440 408\n"
	for _, name := range []string{"parley", "my prog", "a) b (c", ")"} {
		got, err := parsePidStat([]byte("6715 (" + name + ")" + tail))
		if err != nil || got != 250+75+12+3 {
			t.Errorf("name %q: %d %v, want %d", name, got, err, 250+75+12+3)
		}
	}
	for _, bad := range []string{
		"6715 parley S 1", // no parentheses
		"6715 (parley) S 1 6713 31770 0 -1 4194304 100 0 0", // too short
		"6715 (parley) S 1 6713 31770 0 -1 4194304 100 0 0 0 x 75 12 3 20",
		"6715 (parley) S 1 6713 31770 0 -1 4194304 100 0 0 0 250 75 -12 3 20",
	} {
		if got, err := parsePidStat([]byte(bad)); err == nil {
			t.Errorf("parsePidStat(%q) = %d, want an error", bad, got)
		}
	}
	// And a real one: this process's.
	if _, err := procTicks(os.Getpid()); err != nil {
		t.Errorf("own /proc/self/stat: %v", err)
	}
}

// sampleAt builds a reading: instance and service ticks, own CPU, and the
// busy ticks of cpu0 and cpu1 (the aggregate is their sum).
func sampleAt(at time.Time, inst, svc uint64, self time.Duration, busy0, busy1, irq0 uint64) cpuSample {
	return cpuSample{at: at, servers: []uint64{inst}, services: []uint64{svc}, self: self, selfOK: true, stat: map[int]cpuLine{
		-1: {busy: busy0 + busy1, irq: irq0},
		0:  {busy: busy0, irq: irq0},
		1:  {busy: busy1},
	}}
}

func TestFiguresOf(t *testing.T) {
	t0 := time.Unix(1000, 0)
	// 10 s: instances 3 s (30 %), services 1 s (10 %), generator 2.5 s
	// (25 %); cpu0 busy 6 s with 0.5 s of interrupts, cpu1 busy 2 s. On
	// both lines other is 8 - 3 - 1 - 2.5 = 1.5 s: 15 %.
	a := sampleAt(t0, 1000, 500, 4*time.Second, 10000, 20000, 100)
	b := sampleAt(t0.Add(10*time.Second), 1300, 600, 6500*time.Millisecond, 10600, 20200, 150)
	f := figuresOf(a, b, nil, true, nil)
	want := cpuFigures{WindowS: 10, Known: true, Server: 40, Instances: 30, Services: 10, ServerSeconds: 4, Gen: 25, Other: 15, Irq: 5}
	if f != want {
		t.Errorf("all lines:\n got %+v\nwant %+v", f, want)
	}
	// On cpu0 alone (both sides pinned there): other is 6 - 6.5 < 0, which
	// is reported as 0.
	f = figuresOf(a, b, []int{0}, true, nil)
	if f.Other != 0 || f.Lines != "0" || f.Irq != 5 || f.Server != 40 {
		t.Errorf("cpu0: %+v", f)
	}
	// On lines 0-1: the same as the aggregate.
	if f = figuresOf(a, b, []int{0, 1}, true, nil); f.Other != 15 || f.Lines != "0-1" {
		t.Errorf("cpu0-1: %+v", f)
	}
	// The servers are not this run's: the generator's figure only.
	f = figuresOf(a, b, nil, false, nil)
	if f.Known || f.Gen != 25 || f.Server != 0 || !strings.Contains(f.Why, "--mode target") {
		t.Errorf("no servers: %+v", f)
	}
	f = figuresOf(a, b, nil, true, errors.New("/proc/42/stat: no such file"))
	if f.Known || !strings.Contains(f.Why, "/proc/42/stat") {
		t.Errorf("failed reading: %+v", f)
	}
}

// TestCleanBoundary: at most 15 % of a core taken by others is clean, more
// is not, decided on the figure the JSON reports (rounded to 0.1).
func TestCleanBoundary(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		otherTicks uint64 // over 10 s
		clean      bool
		pct        float64
	}{
		{0, true, 0},
		{149, true, 14.9},
		{150, true, 15.0},
		{151, false, 15.1},
		{370, false, 37},
	} {
		// Instances 100 ticks, generator 1 s: busy = 200 + other.
		a := sampleAt(t0, 0, 0, 0, 0, 0, 0)
		b := sampleAt(t0.Add(10*time.Second), 100, 0, time.Second, 200+tc.otherTicks, 0, 0)
		f := figuresOf(a, b, nil, true, nil)
		clean, why := cleanOf(f)
		if f.Other != tc.pct || clean != tc.clean || (why == "") != tc.clean {
			t.Errorf("other %d ticks: %.1f %% clean %v %q, want %.1f %% clean %v", tc.otherTicks, f.Other, clean, why, tc.pct, tc.clean)
		}
		if !clean && !strings.Contains(why, "other processes took "+strconv.FormatFloat(tc.pct, 'f', 1, 64)+" % of a core") {
			t.Errorf("unclean sentence %q", why)
		}
		var res Result
		res.Sent, res.Delivered = 1000, 10000
		f.apply(&res)
		if res.Clean != tc.clean || res.OtherCPUPct != tc.pct || res.ServerCPUPct != 10 || res.ServerCPUUsPerMsg != 1000 || res.ServerCPUUsPerDelivery != 100 {
			t.Errorf("applied: %+v", res)
		}
	}
	// Not known is not clean, and the JSON says -1.
	var res Result
	figuresOf(cpuSample{at: t0, selfOK: true}, cpuSample{at: t0.Add(time.Second), selfOK: true}, nil, false, nil).apply(&res)
	if res.Clean || res.Unclean == "" || res.ServerCPUPct != -1 || res.OtherCPUPct != -1 {
		t.Errorf("target mode: %+v", res)
	}
}

// TestCPUMeter measures a child that spins for 600 ms of CPU time: the
// meter must see about that on the server side, and this process's own
// figure must not include it.
func TestCPUMeter(t *testing.T) {
	if os.Getenv("LOADGEN_TEST_SPIN") == "1" {
		spinChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCPUMeter$")
	cmd.Env = append(os.Environ(), "LOADGEN_TEST_SPIN=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	out := bufio.NewReader(stdout)
	if l, _ := out.ReadString('\n'); l != "ready\n" {
		t.Fatalf("child said %q", l)
	}
	m := startCPU([]int{cmd.Process.Pid}, nil)
	io.WriteString(stdin, "go\n")
	if l, _ := out.ReadString('\n'); l != "spun\n" {
		t.Fatalf("child said %q", l)
	}
	f := m.stop()
	t.Logf("child: %.3f s of CPU, %.1f %% over %.2f s; this process %.1f %%, other %.1f %%", f.ServerSeconds, f.Server, f.WindowS, f.Gen, f.Other)
	if !f.Known || f.ServerSeconds < 0.5 || f.ServerSeconds > 0.75 || f.Services != 0 {
		t.Errorf("child spun 0.6 s, meter says %+v", f)
	}
	if f.Gen >= f.Server {
		t.Errorf("generator %.1f %% while the child took %.1f %%: the child counted as ours?", f.Gen, f.Server)
	}
}

// spinChild waits for a line, spins until it used 600 ms of CPU, says so,
// and lives on until stdin closes (the meter reads it while it runs).
func spinChild() {
	in := bufio.NewReader(os.Stdin)
	os.Stdout.WriteString("ready\n")
	in.ReadString('\n')
	start, _ := selfCPU()
	for x := 0.0; ; x += math.Sqrt(x + 1) {
		if d, _ := selfCPU(); d-start >= 600*time.Millisecond {
			break
		}
	}
	os.Stdout.WriteString("spun\n")
	in.ReadString('\n')
	os.Exit(0)
}

func TestPinSplit(t *testing.T) {
	for _, tc := range []struct {
		in           []int
		server, gen  string
		wantErr      bool
		formattedAll string
	}{
		{in: []int{0, 1}, server: "0", gen: "1", formattedAll: "0-1"},
		{in: []int{1, 0}, server: "0", gen: "1", formattedAll: "0-1"},
		{in: []int{0, 1, 2}, server: "0-1", gen: "2", formattedAll: "0-2"},
		{in: []int{0, 1, 2, 3, 4, 5, 6, 7}, server: "0-3", gen: "4-7", formattedAll: "0-7"},
		{in: []int{2, 3, 5, 9, 10}, server: "2-3,5", gen: "9-10", formattedAll: "2-3,5,9-10"},
		{in: []int{0, 0, 1}, server: "0", gen: "1", formattedAll: "0-1"},
		{in: []int{3}, wantErr: true, formattedAll: "3"},
		{in: nil, wantErr: true},
	} {
		s, g, err := pinSplit(tc.in)
		if (err != nil) != tc.wantErr || formatCPUList(s) != tc.server || formatCPUList(g) != tc.gen {
			t.Errorf("pinSplit(%v) = %v %v %v, want %q %q (error %v)", tc.in, s, g, err, tc.server, tc.gen, tc.wantErr)
		}
		sorted := slices.Compact(slices.Sorted(slices.Values(tc.in)))
		if got := formatCPUList(sorted); got != tc.formattedAll {
			t.Errorf("formatCPUList(%v) = %q, want %q", sorted, got, tc.formattedAll)
		}
		if back, err := parseCPUList(tc.formattedAll); tc.formattedAll != "" && (err != nil || !slices.Equal(back, sorted)) {
			t.Errorf("parseCPUList(%q) = %v %v: not what formatCPUList wrote", tc.formattedAll, back, err)
		}
	}
}

func TestPinFlags(t *testing.T) {
	_, err := exec.LookPath("taskset")
	testenv.Need(t, "taskset", err)
	online, err := onlineCPUs()
	if err == nil && (!online[0] || !online[1]) {
		err = fmt.Errorf("online CPUs %v", online)
	}
	testenv.Need(t, "CPUs 0 and 1 online", err)
	for _, tc := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"--pin", "--server-cpus=0"}, "--pin chooses"},
		{[]string{"--pin", "--gen-cpus=1"}, "--pin chooses"},
		{[]string{"--pin", "--server-cpus=0", "--gen-cpus=1"}, "--pin chooses"},
		{[]string{"--pin", "--target=http://127.0.0.1:8080"}, "--mode=target starts none"},
	} {
		if _, err := parseFlags(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
	// The pinned run splits what its parent split, not its own affinity
	// (which is the generator's share by then).
	t.Setenv(pinnedEnv, "1")
	t.Setenv(pinBaseEnv, "0-1")
	for _, mode := range []string{"embedded", "kafka"} {
		c, err := parseFlags([]string{"--pin", "--mode=" + mode, "--require-clean"}, io.Discard)
		if err != nil || !c.Pin || c.ServerCPUs != "0" || c.GenCPUs != "1" || c.PinBase != "0-1" || !c.RequireClean {
			t.Errorf("%s, pinned run: %+v %v", mode, c, err)
		}
	}
	// The first run splits the CPUs it may use.
	t.Setenv(pinnedEnv, "")
	base, err := pinBase()
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseFlags([]string{"--pin"}, io.Discard)
	if len(base) < 2 {
		if err == nil {
			t.Errorf("--pin on %v accepted", base)
		}
	} else {
		s, g, _ := pinSplit(base)
		if err != nil || c.ServerCPUs != formatCPUList(s) || c.GenCPUs != formatCPUList(g) || c.PinBase != formatCPUList(base) {
			t.Errorf("--pin on %v: %+v %v", base, c, err)
		}
	}
	// Only the generator pinned: the servers get every online CPU rather
	// than inherit the generator's.
	all, _ := onlineList()
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{}, ""},
		{Config{ServerCPUs: "0", GenCPUs: "1"}, "0"},
		{Config{ServerCPUs: "0"}, "0"},
		{Config{GenCPUs: "1"}, all},
	} {
		if got, err := tc.c.serverSideCPUs(); err != nil || got != tc.want {
			t.Errorf("serverSideCPUs(%+v) = %q %v, want %q", tc.c, got, err, tc.want)
		}
	}
}

// TestPinnedRun runs the real generator binary with --pin --require-clean
// (so the re-exec under taskset and the exit status are the real ones) on a
// small embedded load, and checks the CPU figures of its JSON line.
func TestPinnedRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the generator and the server")
	}
	_, err := exec.LookPath("taskset")
	testenv.Need(t, "taskset", err)
	base, err := pinBase()
	if err == nil && len(base) < 2 {
		err = fmt.Errorf("CPUs %v", base)
	}
	testenv.Need(t, "2 CPUs to split", err)
	wantServer, wantGen, _ := pinSplit(base)
	bin := filepath.Join(t.TempDir(), "loadgen")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--pin", "--require-clean", "--scenario=rooms", "--conns=20", "--rooms=2", "--rate=100", "--duration=2s", "--drain=2s", "--quiet")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(runErr, &exit) {
		code = exit.Sys().(syscall.WaitStatus).ExitStatus()
	} else if runErr != nil {
		t.Fatal(runErr)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line not JSON (exit %d): %v\nstdout %s\nstderr %s", code, err, stdout.String(), stderr.String())
	}
	if testing.Verbose() {
		t.Logf("exit %d\n%s", code, stdout.String())
	}
	num := func(k string) float64 {
		v, ok := res[k].(float64)
		if !ok {
			t.Errorf("%s: %v (%T), want a number", k, res[k], res[k])
		}
		return v
	}
	if res["server_cpus"] != formatCPUList(wantServer) || res["gen_cpus"] != formatCPUList(wantGen) || res["pin"] != true {
		t.Errorf("cpus: server %v generator %v pin %v, want %v and %v", res["server_cpus"], res["gen_cpus"], res["pin"], wantServer, wantGen)
	}
	if num("lost") != 0 || num("sent") < 150 {
		t.Errorf("sent %v lost %v", res["sent"], res["lost"])
	}
	win, server, gen, other := num("cpu_window_s"), num("server_cpu_pct"), num("gen_cpu_pct"), num("other_cpu_pct")
	if win < 2 || win > 5 {
		t.Errorf("cpu_window_s %.2f: want the 2 s of sending and at most the 2 s drain", win)
	}
	// One pinned core each: neither side can exceed it (a little slack for
	// the tick counts).
	if server <= 0 || server > 110*float64(len(wantServer)) || gen <= 0 || gen > 110*float64(len(wantGen)) || other < 0 {
		t.Errorf("server %.1f %% generator %.1f %% other %.1f %%", server, gen, other)
	}
	// The lines counted are the pinned CPUs, which cover the machine here.
	if l := res["cpu_lines"]; l != "all" && l != formatCPUList(base) {
		t.Errorf("cpu_lines %v", l)
	}
	clean, _ := res["clean"].(bool)
	unclean, _ := res["unclean"].(string)
	if clean != (other <= cleanLimitPct) || clean == (unclean != "") {
		t.Errorf("clean %v (%q) with other %.1f %%", clean, unclean, other)
	}
	if want := map[bool]int{true: 0, false: exitUnclean}[clean]; code != want {
		t.Errorf("exit status %d, want %d for clean=%v\nstderr %s", code, want, clean, stderr.String())
	}
	// µs per message: the server's CPU seconds over the messages.
	perMsg, perDel := num("server_cpu_us_per_msg"), num("server_cpu_us_per_delivery")
	fromPct := server / 100 * win * 1e6 / num("sent")
	if perMsg <= 0 || math.Abs(perMsg-fromPct) > 0.05*fromPct+1 || math.Abs(perDel*10-perMsg) > 0.05*perMsg+0.1 {
		t.Errorf("per message %.2f µs (from the percentage %.2f), per delivery %.2f µs (10 receivers a room)", perMsg, fromPct, perDel)
	}
	if !strings.Contains(stdout.String(), "µs per message sent") {
		t.Errorf("summary lacks the per-message row:\n%s", stdout.String())
	}
}
