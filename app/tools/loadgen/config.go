package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is one load-generator run, after the scenario's defaults and the
// explicit flags have been merged (see resolve).
//
// Roles: Conns receiving connections each join one room (connection i joins
// room i % Rooms) and record every message frame; Senders are separate
// sending connections that do not join (the contract lets a connection send
// to a room it has not joined), sender j sends to room j % Rooms. The total
// number of connections is therefore Conns + Senders, each one TCP
// connection and one file descriptor: with --transport sse a receiver holds
// an event stream and a sender one keep-alive connection for its POSTs.
type Config struct {
	Scenario  string
	Mode      string // embedded | target | kafka
	Targets   []string
	Transport string
	Conns     int
	Rooms     int
	Senders   int
	Rate      float64 // messages/s in total across all senders
	Duration  time.Duration
	Drain     time.Duration
	Dial      int // dials in flight at once
	Quiet     bool

	// Private: the rooms are private rooms an owner user creates, and
	// every receiver and sender is added to its room as a member before
	// the measured phase (in roomlist: the kind of the rooms created).
	Private bool
	// MentionPercent is the share of sent messages that mention another
	// sender of the same room (@name): each is a notification due when its
	// target has not read it within PARLEY_NOTIFY_DELAY.
	MentionPercent float64
	// ReactPercent is the share of sends that are reactions (WebSocket
	// react frames) to the newest message a receiver of the room saw:
	// timeline items of their own, delivered like messages.
	ReactPercent float64
	// Setup is how many room creations and member adds are in flight at
	// once before the measured phase.
	Setup int

	// ServerCPUs and GenCPUs pin the servers this run starts (with Kafka
	// and FerretDB in --mode kafka) and the generator itself to those CPUs
	// (taskset lists); empty: not pinned.
	ServerCPUs string
	GenCPUs    string
	// Pin: ServerCPUs and GenCPUs were chosen by --pin, a split of PinBase
	// (see pinSplit).
	Pin     bool
	PinBase string
	// RequireClean: an unclean run (cleanOf) exits with status 3.
	RequireClean bool

	// --scenario roomlist: GET /api/rooms by one user who is a member of
	// Rooms rooms, ListCalls times for each limit in ListLimits and each
	// number of concurrent callers in ListCallers.
	ListLimits  []int
	ListCallers []int
	ListCalls   int
	// ListUnread: another user posts this many messages to each room
	// before the phases (every fifth mentions the listing user), so that
	// every room object's counts cost their lookups.
	ListUnread int

	// --mode kafka: instances started, on the generator's own services.
	Instances           int
	KafkaPort           int
	KafkaControllerPort int
	MongoPort           int
	KeepServices        bool
}

// scenarioDefaults are the shapes of the named scenarios.
var scenarioDefaults = map[string]Config{
	// One big room: the fan-out cost of one message to many sockets.
	"fanout": {Conns: 1000, Rooms: 1, Senders: 10, Rate: 100, Duration: 10 * time.Second},
	// Many small rooms: 10 receivers per room, one sender per room.
	"rooms": {Conns: 10000, Rooms: 1000, Senders: 1000, Rate: 2000, Duration: 10 * time.Second},
	// Connections held open, no traffic: memory per idle connection.
	"idle": {Conns: 15000, Rooms: 100, Senders: 0, Rate: 0, Duration: 10 * time.Second},
	// Many senders, few receivers: the write path (ack = durably accepted)
	// and the store's sustained rate. 10 msg/s per sender, well inside a
	// server's default per-connection limit (20/s).
	"ingest": {Conns: 10, Rooms: 10, Senders: 500, Rate: 5000, Duration: 10 * time.Second},
	// One user in 1,000 rooms lists them: GET /api/rooms, no connections.
	"roomlist": {Rooms: 1000, Duration: 10 * time.Second},
}

// parseFlags parses args into a resolved Config.
func parseFlags(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c Config
	var targets, limits, callers string
	fs.StringVar(&c.Scenario, "scenario", "fanout", "fanout | rooms | idle | ingest | roomlist")
	fs.StringVar(&c.Mode, "mode", "", "embedded (start ./app on the embedded default) | kafka (start Kafka, FerretDB and --instances instances) | target (--target); default: embedded, or target when --target is set")
	fs.StringVar(&targets, "target", "", "comma-separated base URLs of running servers, e.g. http://127.0.0.1:8080 (loopback only)")
	fs.StringVar(&c.Transport, "transport", "ws", "ws (WebSocket) | sse (receivers hold SSE streams, senders POST)")
	fs.IntVar(&c.Conns, "conns", 0, "receiving connections (scenario default)")
	fs.IntVar(&c.Rooms, "rooms", 0, "rooms (scenario default)")
	fs.IntVar(&c.Senders, "senders", 0, "sending connections, in addition to --conns (scenario default)")
	fs.Float64Var(&c.Rate, "rate", 0, "messages/s in total across senders (scenario default)")
	fs.DurationVar(&c.Duration, "duration", 0, "sending phase (scenario default)")
	fs.DurationVar(&c.Drain, "drain", 3*time.Second, "wait after sending for late deliveries")
	fs.IntVar(&c.Dial, "dial-concurrency", 64, "connections dialed at once")
	fs.BoolVar(&c.Quiet, "quiet", false, "no progress lines")
	fs.BoolVar(&c.Private, "private", false, "private rooms: an owner creates them and adds every receiver and sender as a member before the measured phase (roomlist: the rooms created are private)")
	fs.Float64Var(&c.ReactPercent, "react-percent", 0, "percent of sends that are reactions (react frames) to the room's newest message (0-100; --transport ws)")
	fs.Float64Var(&c.MentionPercent, "mention-percent", 0, "percent of messages that @mention another sender of the room (0-100): the notifications consumer's load")
	fs.IntVar(&c.Setup, "setup-concurrency", 8, "room creations and member adds in flight at once before the measured phase")
	fs.StringVar(&c.ServerCPUs, "server-cpus", "", "pin the servers this run starts to these CPUs (taskset list, e.g. 0); in --mode kafka Kafka and FerretDB too")
	fs.StringVar(&c.GenCPUs, "gen-cpus", "", "pin the generator to these CPUs (taskset list, e.g. 1): it runs itself again under taskset -c")
	fs.BoolVar(&c.Pin, "pin", false, "split the CPUs this process may use: the servers this run starts (in --mode kafka with Kafka and FerretDB: everything it starts is server side) on the first half, rounded up, the generator on the rest (2 CPUs: server 0, generator 1; 3: 0-1 and 2); instead of --server-cpus/--gen-cpus")
	fs.BoolVar(&c.RequireClean, "require-clean", false, fmt.Sprintf("exit with status 3, after the results, when the run is not clean: other processes took more than %.0f %% of a core during the measured window, or that is not known (--mode target)", cleanLimitPct))
	fs.StringVar(&limits, "list-limits", "100,200", "roomlist: the limit of each phase's GET /api/rooms, comma-separated (1-200)")
	fs.StringVar(&callers, "list-callers", "1,4", "roomlist: concurrent callers of each phase, comma-separated")
	fs.IntVar(&c.ListCalls, "list-calls", 2000, "roomlist: GET /api/rooms calls per phase, over all its callers")
	fs.IntVar(&c.ListUnread, "list-unread", 0, "roomlist: messages another user posts to each room before the phases (every fifth mentions the listing user): unread and mention counts to compute")
	fs.IntVar(&c.Instances, "instances", 1, "--mode kafka: server instances, connections spread over them")
	fs.IntVar(&c.KafkaPort, "kafka-port", defaultKafkaPort, "--mode kafka: the generator's Kafka broker port")
	fs.IntVar(&c.KafkaControllerPort, "kafka-controller-port", defaultKafkaControllerPort, "--mode kafka: its KRaft controller port")
	fs.IntVar(&c.MongoPort, "mongo-port", defaultMongoPort, "--mode kafka: the generator's FerretDB port")
	fs.BoolVar(&c.KeepServices, "keep-services", false, "--mode kafka: leave Kafka and FerretDB running for the next run (which reuses them)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, t := range strings.Split(targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.Targets = append(c.Targets, strings.TrimRight(t, "/"))
		}
	}
	var err error
	if c.ListLimits, err = intList("--list-limits", limits, 1, 200); err != nil {
		return Config{}, err
	}
	if c.ListCallers, err = intList("--list-callers", callers, 1, 64); err != nil {
		return Config{}, err
	}
	return resolve(c, set)
}

// resolve fills what the flags did not set from the scenario's defaults and
// checks the result.
func resolve(c Config, set map[string]bool) (Config, error) {
	def, ok := scenarioDefaults[c.Scenario]
	if !ok {
		return c, fmt.Errorf("unknown --scenario %q: want fanout, rooms, idle, ingest or roomlist", c.Scenario)
	}
	if !set["conns"] {
		c.Conns = def.Conns
	}
	if !set["rooms"] {
		c.Rooms = def.Rooms
	}
	if !set["senders"] {
		c.Senders = def.Senders
		// One sender per room by default in the rooms scenario, whatever
		// --rooms says.
		if c.Scenario == "rooms" {
			c.Senders = c.Rooms
		}
	}
	if !set["rate"] {
		c.Rate = def.Rate
	}
	if !set["duration"] {
		c.Duration = def.Duration
	}
	if c.Mode == "" {
		c.Mode = "embedded"
		if len(c.Targets) > 0 {
			c.Mode = "target"
		}
	}
	switch c.Mode {
	case "embedded":
		if len(c.Targets) > 0 {
			return c, errors.New("--mode=embedded starts its own server: drop --target (or use --mode=target)")
		}
		if set["instances"] && c.Instances != 1 {
			return c, errors.New("--mode=embedded runs one instance (its bus is in process): use --mode=kafka for --instances")
		}
	case "target":
		if len(c.Targets) == 0 {
			return c, errors.New("--mode=target needs --target URL[,URL...]")
		}
	case "kafka":
		if len(c.Targets) > 0 {
			return c, errors.New("--mode=kafka starts its own cluster: drop --target (or use --mode=target)")
		}
		if c.Instances < 1 || c.Instances > 16 {
			return c, errors.New("--instances must be 1 to 16")
		}
		for _, p := range []int{c.KafkaPort, c.KafkaControllerPort, c.MongoPort} {
			if p < 1024 || p > 65535 {
				return c, fmt.Errorf("port %d out of range", p)
			}
		}
	default:
		return c, fmt.Errorf("unknown --mode %q: want embedded, target or kafka", c.Mode)
	}
	for _, t := range c.Targets {
		if err := loopbackURL(t); err != nil {
			return c, err
		}
	}
	switch c.Transport {
	case "ws", "sse":
	default:
		return c, fmt.Errorf("unknown --transport %q: want ws or sse", c.Transport)
	}
	if c.Rooms < 1 {
		return c, errors.New("--rooms must be at least 1")
	}
	if c.Conns < 0 || c.Senders < 0 || c.Rate < 0 || c.Duration <= 0 || c.Drain < 0 {
		return c, errors.New("--conns, --senders, --rate must be >= 0 and --duration > 0")
	}
	if c.Rate > 0 && c.Senders == 0 {
		return c, errors.New("--rate > 0 needs --senders > 0")
	}
	if c.Duration > time.Hour {
		return c, errors.New("--duration is capped at 1h")
	}
	if c.ReactPercent < 0 || c.ReactPercent > 100 {
		return c, errors.New("--react-percent must be 0 to 100")
	}
	if c.ReactPercent > 0 && (c.Transport != "ws" || c.Conns == 0) {
		return c, errors.New("--react-percent needs --transport ws and receivers (they tell the senders the seqs to react to)")
	}
	if c.MentionPercent < 0 || c.MentionPercent > 100 {
		return c, errors.New("--mention-percent must be 0 to 100")
	}
	if c.MentionPercent > 0 && c.Senders < 2*c.Rooms {
		return c, errors.New("--mention-percent needs at least two senders per room (a sender mentions another of its room)")
	}
	if c.Dial < 1 {
		c.Dial = 1
	}
	if c.Setup < 1 {
		c.Setup = 1
	}
	if c.Scenario == "roomlist" {
		if c.Conns != 0 || c.Senders != 0 || c.Rate != 0 {
			return c, errors.New("--scenario=roomlist opens no connections: drop --conns, --senders and --rate")
		}
		if c.Rooms > 100000 {
			return c, errors.New("--scenario=roomlist: --rooms is capped at 100,000")
		}
		if c.ListCalls < 1 {
			return c, errors.New("--list-calls must be at least 1")
		}
		if c.ListUnread < 0 || c.ListUnread > 1000 {
			return c, errors.New("--list-unread must be 0 to 1000")
		}
	}
	if c.Pin {
		if c.ServerCPUs != "" || c.GenCPUs != "" {
			return c, errors.New("--pin chooses the server's and the generator's CPUs itself: drop it, or drop --server-cpus/--gen-cpus")
		}
		if c.Mode == "target" {
			return c, errors.New("--pin splits the CPUs between the servers this run starts and the generator: --mode=target starts none (pin the generator alone with --gen-cpus)")
		}
		base, err := pinBase()
		if err != nil {
			return c, err
		}
		server, gen, err := pinSplit(base)
		if err != nil {
			return c, err
		}
		c.PinBase, c.ServerCPUs, c.GenCPUs = formatCPUList(base), formatCPUList(server), formatCPUList(gen)
	}
	if c.ServerCPUs != "" || c.GenCPUs != "" {
		if c.Mode == "target" && c.ServerCPUs != "" {
			return c, errors.New("--server-cpus pins the servers this run starts: --mode=target starts none")
		}
		online, err := onlineCPUs()
		if err != nil {
			return c, err
		}
		for _, p := range []struct{ flag, list string }{{"--server-cpus", c.ServerCPUs}, {"--gen-cpus", c.GenCPUs}} {
			if p.list == "" {
				continue
			}
			cpus, err := parseCPUList(p.list)
			if err != nil {
				return c, fmt.Errorf("%s: %w", p.flag, err)
			}
			for _, n := range cpus {
				if !online[n] {
					return c, fmt.Errorf("%s: CPU %d is not online (%s)", p.flag, n, onlinePath)
				}
			}
		}
		if _, err := exec.LookPath("taskset"); err != nil {
			return c, fmt.Errorf("--server-cpus/--gen-cpus start processes under taskset (util-linux): %w", err)
		}
	}
	return c, nil
}

// serverSideCPUs is the CPU list the servers this run starts are given: the
// asked one, or, when only the generator is pinned, every online CPU, for
// they would otherwise inherit the generator's; "" when nothing is pinned.
func (c Config) serverSideCPUs() (string, error) {
	if c.ServerCPUs != "" || c.GenCPUs == "" {
		return c.ServerCPUs, nil
	}
	return onlineList()
}

// onlineList is every online CPU as a taskset list.
func onlineList() (string, error) {
	online, err := onlineCPUs()
	if err != nil {
		return "", err
	}
	var cpus []int
	for n := range online {
		cpus = append(cpus, n)
	}
	slices.Sort(cpus)
	return formatCPUList(cpus), nil
}

// intList parses a comma-separated list of whole numbers from lo to hi.
func intList(flag, s string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < lo || n > hi {
			return nil, fmt.Errorf("%s: %q is not a whole number from %d to %d", flag, f, lo, hi)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: give at least one number", flag)
	}
	return out, nil
}

// onlinePath lists the CPUs the kernel runs.
const onlinePath = "/sys/devices/system/cpu/online"

// onlineCPUs is the set of online CPUs. Not the process's own affinity: a
// generator pinned to CPU 1 may still start its server on CPU 0.
func onlineCPUs() (map[int]bool, error) {
	b, err := os.ReadFile(onlinePath)
	if err != nil {
		return nil, fmt.Errorf("online CPUs: %w", err)
	}
	cpus, err := parseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", onlinePath, err)
	}
	set := map[int]bool{}
	for _, n := range cpus {
		set[n] = true
	}
	return set, nil
}

// parseCPUList reads a CPU list as taskset -c and the kernel write it:
// "0", "0-3", "0,2,5-7".
func parseCPUList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := a, error(nil)
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a || b > 4095 {
			return nil, fmt.Errorf("%q is not a CPU list (e.g. 0, 0-1, 0,2)", s)
		}
		for n := a; n <= b; n++ {
			out = append(out, n)
		}
	}
	return out, nil
}

// loopbackURL refuses targets outside 127.0.0.0/8 (and ::1): the generator
// is for local benchmarks only.
func loopbackURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--target %q: want http://127.0.0.1:PORT", s)
	}
	ip := net.ParseIP(u.Hostname())
	if u.Hostname() == "localhost" {
		ip = net.IPv4(127, 0, 0, 1)
	}
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--target %q: only loopback addresses (127.0.0.0/8) are allowed", s)
	}
	return nil
}
