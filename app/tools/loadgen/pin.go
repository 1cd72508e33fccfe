package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// Pinning (--server-cpus, --gen-cpus): on a small machine the server and
// the generator fight over the same cores, and a latency figure taken that
// way measures the fight. Each side is pinned by taskset: the servers are
// started under it (localcluster.InstanceConfig.CPUs), the generator runs
// itself again under it.

// pinnedEnv marks the generator's pinned run, so that it re-executes once.
const pinnedEnv = "PARLEY_LOADGEN_PINNED_CPUS"

// pinSelf runs the generator again, same arguments, under taskset -c cpus,
// unless this already is that run. Pinning the whole process from its start
// covers every thread the runtime makes later (setting the affinity from
// inside would reach only the threads that exist at that moment), and the
// runtime then sizes GOMAXPROCS to those CPUs. It returns only when no
// re-exec is needed or the re-exec failed.
func pinSelf(cpus string) error {
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

// cpus reports the CPUs each side had: the distinct lists of the servers
// this run started (while they run), and the generator's own.
func (r *runner) cpus() (server, gen string) {
	seen := map[string]bool{}
	var lists []string
	for _, pid := range r.serverPIDs {
		if l := cpusAllowed(strconv.Itoa(pid)); l != "" && !seen[l] {
			seen[l] = true
			lists = append(lists, l)
		}
	}
	return strings.Join(lists, " "), cpusAllowed("self")
}
