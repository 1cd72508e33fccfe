package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Pinning (--pin, or --server-cpus and --gen-cpus): on a small machine the
// server and the generator fight over the same cores, and a latency figure
// taken that way measures the fight. Each side is pinned by taskset: the
// servers are started under it (localcluster.InstanceConfig.CPUs), Kafka and
// FerretDB, which their scripts start as daemons, are re-pinned once they
// run (taskset -a -p: every thread), and the generator runs itself again
// under it.

// pinnedEnv marks the generator's pinned run, so that it re-executes once.
const pinnedEnv = "PARLEY_LOADGEN_PINNED_CPUS"

// pinBaseEnv carries, into the pinned run, the CPUs --pin split: that run
// may use only the generator's share, and splitting its own affinity again
// would give another answer.
const pinBaseEnv = "PARLEY_LOADGEN_PIN_BASE"

// pinBase is the set of CPUs --pin splits: those this process may run on
// that are online (a generator started under taskset -c 2-3 benchmarks on
// CPUs 2 and 3), or in the pinned run the set its parent split.
func pinBase() ([]int, error) {
	if os.Getenv(pinnedEnv) != "" {
		if b := os.Getenv(pinBaseEnv); b != "" {
			return parseCPUList(b)
		}
	}
	online, err := onlineCPUs()
	if err != nil {
		return nil, err
	}
	own, err := parseCPUList(cpusAllowed("self"))
	if err != nil {
		return nil, fmt.Errorf("--pin: this process's CPUs (Cpus_allowed_list): %w", err)
	}
	var out []int
	for _, n := range own {
		if online[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// pinSplit divides the CPUs between the servers and the generator: the
// servers get the first half, rounded up (on 2 CPUs: 0 and 1; on 3: 0-1
// and 2; on 8: 0-3 and 4-7). The server side is what a benchmark measures,
// so an odd CPU goes to it; the generator's readers at high fan-out rates
// need about as much again, so it gets no less than a third.
func pinSplit(cpus []int) (server, gen []int, err error) {
	cpus = slices.Clone(cpus)
	slices.Sort(cpus)
	cpus = slices.Compact(cpus)
	if len(cpus) < 2 {
		return nil, nil, fmt.Errorf("--pin splits the CPUs between the servers and the generator, but this process may run on %d (%s): give --server-cpus/--gen-cpus or run it on 2 or more", len(cpus), formatCPUList(cpus))
	}
	n := (len(cpus) + 1) / 2
	return cpus[:n], cpus[n:], nil
}

// formatCPUList writes CPUs as taskset -c reads them, runs as ranges:
// [0 1 2 5] is "0-2,5"; nil is "".
func formatCPUList(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

// pinSelf runs the generator again, same arguments, under taskset -c cpus,
// unless this already is that run. Pinning the whole process from its start
// covers every thread the runtime makes later (setting the affinity from
// inside would reach only the threads that exist at that moment), and the
// runtime then sizes GOMAXPROCS to those CPUs. It returns only when no
// re-exec is needed or the re-exec failed.
func pinSelf(cfg Config) error {
	cpus := cfg.GenCPUs
	if os.Getenv(pinnedEnv) == cpus {
		return nil
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("--gen-cpus: taskset (util-linux) not found: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--gen-cpus: %w", err)
	}
	argv := append([]string{"taskset", "-c", cpus, exe}, os.Args[1:]...)
	env := append(os.Environ(), pinnedEnv+"="+cpus)
	if cfg.Pin {
		env = append(env, pinBaseEnv+"="+cfg.PinBase)
	}
	if err := syscall.Exec(taskset, argv, env); err != nil {
		return fmt.Errorf("--gen-cpus: run under taskset: %w", err)
	}
	return nil // not reached: Exec replaced the process
}

// cpusAllowed is the CPU list a process may run on, as the kernel reports
// it (Cpus_allowed_list in /proc/<pid>/status; pid "self" for this one), or
// "" when not known.
func cpusAllowed(pid string) string {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// pinPID sets the CPUs of a running process and of all its threads
// (taskset -a -p): how Kafka and FerretDB, which their scripts start as
// daemons, are put on the server side. Threads they start later inherit it.
func pinPID(pid int, cpus string) error {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("taskset (util-linux) not found: %w", err)
	}
	if out, err := exec.Command(taskset, "-a", "-p", "-c", cpus, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		return fmt.Errorf("taskset -a -p -c %s %d: %w: %s", cpus, pid, err, bytes.TrimSpace(out))
	}
	return nil
}

// cpus reports the CPUs each side had: the distinct lists of the server
// side's processes this run started or pinned (while they run: the
// instances, Kafka and FerretDB), and the generator's own.
func (r *runner) cpus() (server, gen string) {
	seen := map[string]bool{}
	var lists []string
	for _, pid := range append(slices.Clone(r.serverPIDs), r.servicePIDs...) {
		if l := cpusAllowed(strconv.Itoa(pid)); l != "" && !seen[l] {
			seen[l] = true
			lists = append(lists, l)
		}
	}
	return strings.Join(lists, " "), cpusAllowed("self")
}
