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
	sendRate := fs.Float64("send_rate", envFloat(env("SEND_RATE", "20")), "messages per second one connection may send (PARLEY_SEND_RATE)")
	sendBurst := fs.Int("send_burst", envInt(env("SEND_BURST", "40")), "burst of sends above the rate (PARLEY_SEND_BURST)")
	queueBytes := fs.Int("queue_bytes", envInt(env("QUEUE_BYTES", "2097152")), "bytes queued for one connection before it is cut off as too slow (PARLEY_QUEUE_BYTES)")
	shutdown := fs.Duration("shutdown_timeout", envDuration(env("SHUTDOWN_TIMEOUT", "15s")), "graceful shutdown deadline (PARLEY_SHUTDOWN_TIMEOUT)")
	shutdownDelay := fs.Duration("shutdown_delay", envDuration(env("SHUTDOWN_DELAY", "0s")), "time /readyz answers 503 before the listener closes, within the deadline (PARLEY_SHUTDOWN_DELAY)")
	pprofAddr := fs.String("pprof_addr", env("PPROF_ADDR", ""), "serve net/http/pprof on this address; unset: off (PARLEY_PPROF_ADDR)")
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
	}
	for _, b := range strings.Split(*brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.KafkaBrokers = append(cfg.KafkaBrokers, b)
		}
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID = defaultInstanceID(cfg.Addr)
	}
	return cfg, cfg.Validate()
}

// Validate refuses configurations that would run but be wrong.
func (c Config) Validate() error {
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
