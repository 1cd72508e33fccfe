package main

import (
	"flag"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func noEnv(string) string { return "" }

// Config{} is valid and means DefaultConfig, as LoadConfig with nothing set
// does.
func TestZeroConfigIsTheDefault(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("Config{}.Validate: %v", err)
	}
	loaded, err := LoadConfig(noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := (Config{}).withDefaults(); !reflect.DeepEqual(got, loaded) {
		t.Fatalf("Config{} with defaults\n%+v\nLoadConfig with nothing set\n%+v", got, loaded)
	}
	if want := DefaultConfig().withDefaults(); !reflect.DeepEqual(loaded, want) {
		t.Fatalf("LoadConfig with nothing set\n%+v\nDefaultConfig\n%+v", loaded, want)
	}
	// A field set keeps its value; the others get theirs.
	c := Config{ShutdownTimeout: 3 * time.Second}
	c.SendRate = 5
	c = c.withDefaults()
	if c.ShutdownTimeout != 3*time.Second || c.SendRate != 5 || c.SendBurst != DefaultConfig().SendBurst || c.Addr != ":8080" {
		t.Fatalf("withDefaults kept or filled the wrong fields: %+v", c)
	}
}

// Every setting is read from PARLEY_<NAME>, a flag -<name> overrides it,
// and a zero the user wrote is refused rather than taken as the default.
func TestLoadConfigEnvFlagsAndZeros(t *testing.T) {
	env := map[string]string{
		"PARLEY_SEND_RATE": "7", "PARLEY_SEND_BURST": "9", "PARLEY_GUEST": "false",
		"PARLEY_SHUTDOWN_DELAY": "2s", "PARLEY_ALLOWED_ORIGINS": " https://a.example , https://b.example",
	}
	getenv := func(k string) string { return env[k] }
	cfg, err := LoadConfig(getenv, []string{"-send_burst=11", "-trusted_proxies=10.0.0.0/8,127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SendRate != 7 || cfg.SendBurst != 11 || !cfg.NoGuests || cfg.ShutdownDelay != 2*time.Second {
		t.Fatalf("env and flags not applied: %+v", cfg)
	}
	if strings.Join(cfg.AllowedOrigins, " ") != "https://a.example https://b.example" ||
		strings.Join(cfg.TrustedProxies, " ") != "10.0.0.0/8 127.0.0.1" {
		t.Fatalf("lists: %q %q", cfg.AllowedOrigins, cfg.TrustedProxies)
	}
	for name, want := range map[string]string{
		"PARLEY_SEND_RATE": "PARLEY_SEND_RATE", "PARLEY_MAX_CONNS_PER_IP": "PARLEY_MAX_CONNS_PER_IP",
		"PARLEY_QUEUE_BYTES": "PARLEY_QUEUE_BYTES", "PARLEY_SHUTDOWN_TIMEOUT": "PARLEY_SHUTDOWN_TIMEOUT",
	} {
		for _, v := range []string{"0", "-1", "x"} {
			_, err := LoadConfig(func(k string) string {
				if k == name {
					return v
				}
				return ""
			}, nil)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s=%s: %v, want an error naming %s", name, v, err, want)
			}
		}
	}
	if _, err := LoadConfig(func(k string) string {
		if k == "PARLEY_GUEST" {
			return "maybe"
		}
		return ""
	}, nil); err == nil {
		t.Error("PARLEY_GUEST=maybe accepted")
	}
	for v, ok := range map[string]bool{"debug": true, "warn": true, "error": true, "verbose": false, "DEBUG": false} {
		cfg, err := LoadConfig(func(k string) string {
			if k == "PARLEY_LOG_LEVEL" {
				return v
			}
			return ""
		}, nil)
		if ok && (err != nil || cfg.LogLevel != v) || !ok && (err == nil || !strings.Contains(err.Error(), "PARLEY_LOG_LEVEL")) {
			t.Errorf("PARLEY_LOG_LEVEL=%s: %v", v, err)
		}
	}
}

// README's configuration table names every setting and gives each its
// default as the code has it.
func TestReadmeConfigTable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg, sw := DefaultConfig(), switchesOn()
	defaults := map[string]string{}
	configFlags(&cfg, &sw, noEnv).VisitAll(func(f *flag.Flag) {
		defaults["PARLEY_"+strings.ToUpper(f.Name)] = f.DefValue
	})
	row := regexp.MustCompile("^\\| ((?:`PARLEY_[A-Z_]+`(?: / )?)+) \\| ([^|]*) \\|")
	code := regexp.MustCompile("`([^`]*)`")
	seen := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		names := code.FindAllStringSubmatch(m[1], -1)
		vals := code.FindAllStringSubmatch(m[2], -1)
		for i, n := range names {
			name := n[1]
			def, ok := defaults[name]
			if !ok {
				t.Errorf("README documents %s, which is no setting", name)
				continue
			}
			seen[name] = true
			doc := ""
			if len(vals) == len(names) {
				doc = vals[i][1]
			}
			if !sameDefault(doc, def) {
				t.Errorf("README gives %s the default %q; the code has %q", name, doc, def)
			}
		}
	}
	for name := range defaults {
		if !seen[name] {
			t.Errorf("README's configuration table lacks %s", name)
		}
	}
}

// sameDefault compares a default as README writes it with a flag's: "" for
// an unset one (README says so in words), a placeholder such as
// <hostname>-<port> for one computed at start, durations by value.
func sameDefault(doc, def string) bool {
	if strings.HasPrefix(doc, "<") {
		return def == ""
	}
	if a, err := time.ParseDuration(doc); err == nil {
		b, err := time.ParseDuration(def)
		return err == nil && a == b
	}
	return doc == def
}
