// Command ferretdb runs a MongoDB wire-protocol server for Parley's tests and
// local cluster: FerretDB embedded as a library, storing in SQLite files.
//
// No MongoDB server can be installed on the project's machines, and a plain
// `go install` of FerretDB's own CLI builds a binary that panics at start; the
// embeddable package works. It brings ~80 modules, which is why this program is
// a module of its own: they stay out of Parley's go.mod.
//
// FerretDB serves the same wire protocol and commands Parley's store uses
// (unique indexes, ordered inserts with per-document write errors, sorted and
// limited finds), but it has no transactions and no change streams and does
// not use indexes to serve reads, so it is a stand-in for correctness tests,
// not for measuring MongoDB's speed.
//
// Usage:
//
//	ferretdb [-port 27018] [-data-dir DIR] [-log-level info] [-ready-file F]   serve until SIGTERM/SIGINT
//	ferretdb -ping [-port 27018] [-timeout 2s]                 exit 0 if the server answers a MongoDB ping
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// defaultPort is one above MongoDB's own, so a real mongod on 27017 may run beside it.
const defaultPort = 27018

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("ferretdb", flag.ContinueOnError)
	port := fs.Int("port", envInt("PARLEY_FERRETDB_PORT", defaultPort), "TCP port on 127.0.0.1 (env PARLEY_FERRETDB_PORT)")
	dataDir := fs.String("data-dir", os.Getenv("PARLEY_FERRETDB_DATA_DIR"), "SQLite data directory, created if missing (env PARLEY_FERRETDB_DATA_DIR; default $TMPDIR/parley-ferretdb-PORT)")
	logLevel := fs.String("log-level", envOr("PARLEY_FERRETDB_LOG_LEVEL", "info"), "debug, info, warn or error (env PARLEY_FERRETDB_LOG_LEVEL)")
	readyFile := fs.String("ready-file", "", "once listening, write the MongoDB URI to this file (lets a script tell its own server from another one on the port)")
	ping := fs.Bool("ping", false, "do not serve: send a MongoDB ping to 127.0.0.1:PORT and exit 0 if it answers")
	timeout := fs.Duration("timeout", 2*time.Second, "with -ping: how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *port <= 0 || *port > 65535 {
		return fmt.Errorf("port %d out of range", *port)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(*port))

	if *ping {
		return pingServer(addr, *timeout)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dir := *dataDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("parley-ferretdb-%d", *port))
	}
	return serve(addr, dir, *readyFile, logger)
}

func serve(addr, dir, readyFile string, logger *slog.Logger) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// FerretDB's SQLite backend wants an existing directory, as a file: URI
	// ending in a slash (one .sqlite file per database goes inside it).
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	sqliteURL := (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir) + "/"}).String()

	// Stop on SIGTERM (ferretdb.sh stop) and SIGINT (Ctrl-C). Run returns once
	// the listener and every connection are closed and the backend is shut.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		return fmt.Errorf("start FerretDB: %w", err)
	}
	// New has bound the port: from here on, a ping on it reaches this process.
	logger.Info("parley ferretdb serving", "uri", f.MongoDBURI(), "data_dir", dir, "pid", os.Getpid())
	if readyFile != "" {
		if err := os.WriteFile(readyFile, []byte(f.MongoDBURI()+"\n"), 0o644); err != nil {
			return fmt.Errorf("ready file: %w", err)
		}
		defer os.Remove(readyFile)
	}

	if err := f.Run(ctx); err != nil {
		return fmt.Errorf("run FerretDB: %w", err)
	}
	logger.Info("parley ferretdb stopped")
	return nil
}

// pingServer sends a real MongoDB ping through the driver, so "ready" means
// the whole stack answers (wire protocol, handler, SQLite), not just that the
// port is open.
func pingServer(addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	opts := options.Client().
		ApplyURI("mongodb://" + addr + "/").
		SetDirect(true).
		SetServerSelectionTimeout(timeout).
		SetConnectTimeout(timeout)
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		return fmt.Errorf("ping %s: %w", addr, err)
	}
	defer client.Disconnect(context.Background())

	// RunCommand fails unless the answer carries ok: 1.
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		return fmt.Errorf("ping %s: %w", addr, err)
	}
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: ignoring %s=%q: not a number\n", key, v)
		return def
	}
	return n
}
