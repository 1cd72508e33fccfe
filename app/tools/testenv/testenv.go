// Package testenv is the tests' one gate on what lies outside them: a real
// service named by an environment variable, or a tool on the machine.
// Without it a test skips, so that go test runs anywhere; under CI=true it
// fails instead, because CI must never pass by having tested nothing.
package testenv

import (
	"os"
	"testing"
)

// The services' variables, as go tool task test:all sets them after
// go tool task services:up.
const (
	Kafka = "PARLEY_TEST_KAFKA" // bootstrap brokers, comma-separated
	Mongo = "PARLEY_TEST_MONGO" // a MongoDB connection string
)

// servicesUp is what services:up starts, for the messages.
var servicesUp = map[string]string{
	Kafka: "127.0.0.1:19092",
	Mongo: "mongodb://127.0.0.1:27018/",
}

// CI reports whether the tests run under CI (CI=true).
func CI() bool { return os.Getenv("CI") == "true" }

// Service returns the value of env, the address of a real service (what,
// e.g. "Kafka"). When env is unset the test skips, or fails under
// CI=true; the message names env and how to start the service.
func Service(t testing.TB, env, what string) string {
	t.Helper()
	if v := os.Getenv(env); v != "" {
		return v
	}
	hint := "start it with go tool task services:up and set " + env
	if v, ok := servicesUp[env]; ok {
		hint += "=" + v
	}
	if CI() {
		t.Fatalf("%s is unset under CI=true, where the %s tests must run, not skip; %s", env, what, hint)
	}
	t.Skipf("%s is unset, so the %s tests skip; %s", env, what, hint)
	return ""
}

// Need is the same gate for anything else a test needs (a tool, a file):
// when err is not nil, what is missing, and the test skips, or fails under
// CI=true.
func Need(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if CI() {
		t.Fatalf("%s is missing under CI=true: %v", what, err)
	}
	t.Skipf("%s is missing: %v", what, err)
}
