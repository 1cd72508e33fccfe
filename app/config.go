package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/handlers"
)

// Config is the whole configuration, read from PARLEY_* environment
// variables, which flags of the same names (lower case, without the prefix)
// may override. Zero values mean the defaults in PROTOCOL.md.
type Config struct {
	Addr         string
	DataDir      string
	KafkaBrokers []string
	MongoURI     string
	MongoDB      string
	InstanceID   string
	TopicSend    string
	TopicReceive string
	Secret       string
	Guest        bool
	// KafkaPartitions and KafkaReplication shape topics created at start.
	KafkaPartitions  int
	KafkaReplication int
	// SendRate and SendBurst limit each connection's sends.
	SendRate  float64
	SendBurst int
	// QueueBytes bounds each connection's outgoing queue.
	QueueBytes int
	// ShutdownTimeout bounds graceful shutdown.
	ShutdownTimeout time.Duration
	// ShutdownDelay is how long /readyz answers 503 before the listener
	// closes, for a load balancer's health check to take the instance out.
	ShutdownDelay time.Duration
	// PprofAddr, when set, serves net/http/pprof there (profiling; keep it
	// on a loopback or otherwise private address).
	PprofAddr string

	// Hardening (PROTOCOL.md v2).
	// ReadTimeout bounds the arrival of a request's headers and body;
	// IdleTimeout closes a keep-alive connection that sends nothing.
	ReadTimeout time.Duration
	IdleTimeout time.Duration
	// PublicURL is where clients reach the chat (behind a reverse proxy);
	// its origin may use the session like the server's own.
	PublicURL string
	// AllowedOrigins are further origins whose pages may use the session.
	AllowedOrigins []string
	// TrustedProxies are the proxies (IPs or CIDRs) whose X-Forwarded-For
	// and X-Forwarded-Proto are believed.
	TrustedProxies []string
	// MetricsToken lets a bearer of it read /metrics from anywhere;
	// MetricsAddr serves /metrics on its own listener instead.
	MetricsToken string
	MetricsAddr  string
	// Limits per user and per client IP.
	MaxConnsPerUser int
	MaxConnsPerIP   int
	SignInRate      float64
	SignInBurst     int
	HistoryRate     float64
	HistoryBurst    int
	RoomRate        float64
	RoomBurst       int

	// fanoutGroup, when set, replaces this instance's own fan-out group. Only
	// tests set it: sharing one group between instances is the bug the
	// design exists to prevent, and the regression test must be able to show
	// that it sees it.
	fanoutGroup string
}

// FanoutGroup is this instance's fan-out consumer group.
func (c Config) FanoutGroup() string {
	if c.fanoutGroup != "" {
		return c.fanoutGroup
	}
	return chat.GroupFanoutPrefix + c.InstanceID
}

// LoadConfig reads the environment through getenv, then flags from args.
func LoadConfig(getenv func(string) string, args []string) (Config, error) {
	env := func(name, def string) string {
		if v := getenv("PARLEY_" + name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("parley", flag.ContinueOnError)
	addr := fs.String("addr", env("ADDR", ":8080"), "listen address (PARLEY_ADDR)")
	dataDir := fs.String("data_dir", env("DATA_DIR", "./data"), "embedded store and generated secret (PARLEY_DATA_DIR)")
	brokers := fs.String("kafka_brokers", env("KAFKA_BROKERS", ""), "comma-separated Kafka bootstrap brokers; unset: embedded bus (PARLEY_KAFKA_BROKERS)")
	mongoURI := fs.String("mongo_uri", env("MONGO_URI", ""), "MongoDB connection string; unset: embedded store (PARLEY_MONGO_URI)")
	mongoDB := fs.String("mongo_db", env("MONGO_DB", "parley"), "MongoDB database (PARLEY_MONGO_DB)")
	instance := fs.String("instance_id", env("INSTANCE_ID", ""), "unique id of this instance; default <hostname>-<port> (PARLEY_INSTANCE_ID)")
	topicSend := fs.String("topic_send", env("TOPIC_SEND", chat.DefaultTopicSend), "send topic (PARLEY_TOPIC_SEND)")
	topicRecv := fs.String("topic_receive", env("TOPIC_RECEIVE", chat.DefaultTopicReceive), "receive topic (PARLEY_TOPIC_RECEIVE)")
	secret := fs.String("secret", env("SECRET", ""), "token signing key; generated in embedded mode (PARLEY_SECRET)")
	guest := fs.String("guest", env("GUEST", "true"), "allow guest sign-in (PARLEY_GUEST)")
	partitions := fs.Int("kafka_partitions", envInt(env("KAFKA_PARTITIONS", "8")), "partitions of topics created at start (PARLEY_KAFKA_PARTITIONS)")
	replication := fs.Int("kafka_replication", envInt(env("KAFKA_REPLICATION", "1")), "replication factor of topics created at start (PARLEY_KAFKA_REPLICATION)")
	sendRate := fs.Float64("send_rate", envFloat(env("SEND_RATE", "20")), "messages per second one user may send, over all their connections (PARLEY_SEND_RATE)")
	sendBurst := fs.Int("send_burst", envInt(env("SEND_BURST", "40")), "burst of sends above the rate (PARLEY_SEND_BURST)")
	queueBytes := fs.Int("queue_bytes", envInt(env("QUEUE_BYTES", "2097152")), "bytes queued for one connection before it is cut off as too slow (PARLEY_QUEUE_BYTES)")
	shutdown := fs.Duration("shutdown_timeout", envDuration(env("SHUTDOWN_TIMEOUT", "15s")), "graceful shutdown deadline (PARLEY_SHUTDOWN_TIMEOUT)")
	shutdownDelay := fs.Duration("shutdown_delay", envDuration(env("SHUTDOWN_DELAY", "0s")), "time /readyz answers 503 before the listener closes, within the deadline (PARLEY_SHUTDOWN_DELAY)")
	pprofAddr := fs.String("pprof_addr", env("PPROF_ADDR", ""), "serve net/http/pprof on this address; unset: off (PARLEY_PPROF_ADDR)")
	readTimeout := fs.Duration("read_timeout", envDuration(env("READ_TIMEOUT", "10s")), "time a request's headers and body may take to arrive (PARLEY_READ_TIMEOUT)")
	idleTimeout := fs.Duration("idle_timeout", envDuration(env("IDLE_TIMEOUT", "60s")), "idle keep-alive connections close after this (PARLEY_IDLE_TIMEOUT)")
	publicURL := fs.String("public_url", env("PUBLIC_URL", ""), "the URL clients reach the chat at, behind a reverse proxy (PARLEY_PUBLIC_URL)")
	allowedOrigins := fs.String("allowed_origins", env("ALLOWED_ORIGINS", ""), "comma-separated further origins whose pages may use the session (PARLEY_ALLOWED_ORIGINS)")
	trustedProxies := fs.String("trusted_proxies", env("TRUSTED_PROXIES", ""), "comma-separated IPs or CIDRs whose X-Forwarded-For/-Proto are believed (PARLEY_TRUSTED_PROXIES)")
	metricsToken := fs.String("metrics_token", env("METRICS_TOKEN", ""), "bearer token that may read /metrics from anywhere (PARLEY_METRICS_TOKEN)")
	metricsAddr := fs.String("metrics_addr", env("METRICS_ADDR", ""), "serve /metrics on this address instead of the chat listener (PARLEY_METRICS_ADDR)")
	connsUser := fs.Int("max_conns_per_user", envInt(env("MAX_CONNS_PER_USER", "20")), "live WebSocket+SSE connections per user (PARLEY_MAX_CONNS_PER_USER)")
	connsIP := fs.Int("max_conns_per_ip", envInt(env("MAX_CONNS_PER_IP", "200")), "live WebSocket+SSE connections per client IP (PARLEY_MAX_CONNS_PER_IP)")
	signInRate := fs.Float64("signin_rate", envFloat(env("SIGNIN_RATE", "1")), "sign-ins per second per client IP (PARLEY_SIGNIN_RATE)")
	signInBurst := fs.Int("signin_burst", envInt(env("SIGNIN_BURST", "20")), "burst of sign-ins per client IP (PARLEY_SIGNIN_BURST)")
	historyRate := fs.Float64("history_rate", envFloat(env("HISTORY_RATE", "10")), "history pages per second per user (PARLEY_HISTORY_RATE)")
	historyBurst := fs.Int("history_burst", envInt(env("HISTORY_BURST", "30")), "burst of history pages per user (PARLEY_HISTORY_BURST)")
	roomRate := fs.Float64("room_rate", envFloat(env("ROOM_RATE", "0.1")), "rooms per second one user may create (PARLEY_ROOM_RATE)")
	roomBurst := fs.Int("room_burst", envInt(env("ROOM_BURST", "10")), "burst of rooms one user may create (PARLEY_ROOM_BURST)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	g, err := strconv.ParseBool(*guest)
	if err != nil {
		return Config{}, fmt.Errorf("PARLEY_GUEST must be true or false, not %q", *guest)
	}
	cfg := Config{
		Addr: *addr, DataDir: *dataDir, MongoURI: *mongoURI, MongoDB: *mongoDB,
		InstanceID: *instance, TopicSend: *topicSend, TopicReceive: *topicRecv, Secret: *secret, Guest: g,
		KafkaPartitions: *partitions, KafkaReplication: *replication,
		SendRate: *sendRate, SendBurst: *sendBurst, QueueBytes: *queueBytes, ShutdownTimeout: *shutdown,
		ShutdownDelay: *shutdownDelay,
		PprofAddr:     *pprofAddr,
		ReadTimeout:   *readTimeout, IdleTimeout: *idleTimeout, PublicURL: strings.TrimSpace(*publicURL),
		AllowedOrigins: splitList(*allowedOrigins), TrustedProxies: splitList(*trustedProxies),
		MetricsToken: *metricsToken, MetricsAddr: *metricsAddr,
		MaxConnsPerUser: *connsUser, MaxConnsPerIP: *connsIP,
		SignInRate: *signInRate, SignInBurst: *signInBurst, HistoryRate: *historyRate, HistoryBurst: *historyBurst,
		RoomRate: *roomRate, RoomBurst: *roomBurst,
	}
	cfg.KafkaBrokers = splitList(*brokers)
	if cfg.InstanceID == "" {
		cfg.InstanceID = defaultInstanceID(cfg.Addr)
	}
	return cfg, cfg.Validate()
}

// splitList splits a comma-separated list, dropping blanks; nil when empty.
func splitList(v string) []string {
	var out []string
	for _, b := range strings.Split(v, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// MinSecretBytes is the shortest PARLEY_SECRET accepted: an HS256 key
// shorter than the hash is guessable offline from one token.
const MinSecretBytes = 32

// Validate refuses configurations that would run but be wrong.
func (c Config) Validate() error {
	if c.Secret != "" && len(c.Secret) < MinSecretBytes {
		return fmt.Errorf("PARLEY_SECRET must be at least %d bytes (it is %d): a short HS256 key can be guessed from any token; generate one with: openssl rand -hex 32", MinSecretBytes, len(c.Secret))
	}
	if c.ReadTimeout <= 0 || c.IdleTimeout <= 0 {
		return errors.New("PARLEY_READ_TIMEOUT and PARLEY_IDLE_TIMEOUT must be positive durations")
	}
	if c.MaxConnsPerUser <= 0 || c.MaxConnsPerIP <= 0 {
		return errors.New("PARLEY_MAX_CONNS_PER_USER and PARLEY_MAX_CONNS_PER_IP must be positive")
	}
	if c.SignInRate <= 0 || c.SignInBurst <= 0 || c.HistoryRate <= 0 || c.HistoryBurst <= 0 || c.RoomRate <= 0 || c.RoomBurst <= 0 {
		return errors.New("PARLEY_SIGNIN_RATE/_BURST, PARLEY_HISTORY_RATE/_BURST and PARLEY_ROOM_RATE/_BURST must be positive")
	}
	if c.PublicURL != "" {
		if _, ok := handlers.NormalizeOrigin(c.PublicURL); !ok {
			return fmt.Errorf("PARLEY_PUBLIC_URL %q must be an http or https URL", c.PublicURL)
		}
	}
	for _, o := range c.AllowedOrigins {
		if _, ok := handlers.NormalizeOrigin(o); !ok {
			return fmt.Errorf("PARLEY_ALLOWED_ORIGINS: %q is not an origin (scheme://host[:port])", o)
		}
	}
	if _, err := parseProxies(c.TrustedProxies); err != nil {
		return err
	}
	if len(c.KafkaBrokers) > 0 && c.MongoURI == "" {
		return errors.New("PARLEY_KAFKA_BROKERS is set but PARLEY_MONGO_URI is not: instances that each persisted to their own embedded file would split the history; set PARLEY_MONGO_URI to a MongoDB shared by all instances")
	}
	if len(c.KafkaBrokers) > 0 && c.Secret == "" {
		return errors.New("PARLEY_SECRET is required with PARLEY_KAFKA_BROKERS: every instance must sign and check tokens with the same secret")
	}
	if c.SendRate <= 0 || c.SendBurst <= 0 {
		return errors.New("PARLEY_SEND_RATE and PARLEY_SEND_BURST must be positive")
	}
	if c.QueueBytes < 64<<10 {
		return errors.New("PARLEY_QUEUE_BYTES must be at least 65536")
	}
	if c.KafkaPartitions <= 0 || c.KafkaReplication <= 0 {
		return errors.New("PARLEY_KAFKA_PARTITIONS and PARLEY_KAFKA_REPLICATION must be positive")
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("PARLEY_SHUTDOWN_TIMEOUT must be positive")
	}
	if c.ShutdownDelay < 0 || c.ShutdownDelay >= c.ShutdownTimeout {
		return errors.New("PARLEY_SHUTDOWN_DELAY must be at least 0 and below PARLEY_SHUTDOWN_TIMEOUT")
	}
	if c.TopicSend == "" || c.TopicReceive == "" || c.TopicSend == c.TopicReceive {
		return errors.New("PARLEY_TOPIC_SEND and PARLEY_TOPIC_RECEIVE must be set and differ")
	}
	return nil
}

// parseProxies reads PARLEY_TRUSTED_PROXIES: IPs (a host each) or CIDRs.
func parseProxies(list []string) ([]*net.IPNet, error) {
	var nets []*net.IPNet
	for _, p := range list {
		if !strings.Contains(p, "/") {
			ip := net.ParseIP(p)
			if ip == nil {
				return nil, fmt.Errorf("PARLEY_TRUSTED_PROXIES: %q is neither an IP nor a CIDR", p)
			}
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			nets = append(nets, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return nil, fmt.Errorf("PARLEY_TRUSTED_PROXIES: %q is neither an IP nor a CIDR", p)
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// allowedOrigins is the origin list the server checks besides a request's
// own: the public URL's and PARLEY_ALLOWED_ORIGINS, normalized.
func (c Config) allowedOrigins() []string {
	var out []string
	for _, o := range append([]string{c.PublicURL}, c.AllowedOrigins...) {
		if n, ok := handlers.NormalizeOrigin(o); ok {
			out = append(out, n)
		}
	}
	return out
}

// defaultInstanceID is <hostname>-<port>, so two instances on one host never
// share a fan-out group.
func defaultInstanceID(addr string) string {
	host, _ := os.Hostname()
	if host == "" {
		host = "parley"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		port = "8080"
	}
	return host + "-" + port
}

// Malformed numbers become -1 (or 0) and fail Validate with a clear message.
func envInt(v string) int {
	n, err := strconv.Atoi(v)
	if err != nil {
		return -1
	}
	return n
}

func envFloat(v string) float64 {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return -1
	}
	return f
}

func envDuration(v string) time.Duration {
	d, err := time.ParseDuration(v)
	if err != nil {
		return -1
	}
	return d
}
