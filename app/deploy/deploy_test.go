// Package deploy_test checks the deployment files offline: the Dockerfile,
// compose.yaml (with the compose specification's own Go loader), the Caddy
// configuration, the Helm chart as `helm template` rendered it (go tool task
// check:deploy), and the Prometheus rules and Grafana dashboard against the
// metrics the server exports. No container engine runs here: images are
// never built, containers never started.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

// root is the repository, from this package's directory.
const root = "../.."

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readmeSettings are the PARLEY_ settings README's configuration table
// documents (the rows app/config_test.go's TestReadmeConfigTable checks
// against the code).
func readmeSettings(t *testing.T) map[string]bool {
	t.Helper()
	row := regexp.MustCompile("^\\| ((?:`PARLEY_[A-Z_]+`(?: / )?)+) \\|")
	name := regexp.MustCompile("`(PARLEY_[A-Z_]+)`")
	out := map[string]bool{}
	for _, line := range strings.Split(read(t, filepath.Join(root, "README.md")), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			for _, n := range name.FindAllStringSubmatch(m[1], -1) {
				out[n[1]] = true
			}
		}
	}
	if len(out) < 30 {
		t.Fatalf("README's configuration table: only %d settings found", len(out))
	}
	return out
}

// deployFiles are the files that set Parley's environment.
func deployFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join(root, "Dockerfile"), filepath.Join(root, "compose.yaml"),
		"proxy/Caddyfile", "helm/parley/values.yaml"}
	tmpl, err := filepath.Glob("helm/parley/templates/*")
	if err != nil || len(tmpl) < 4 {
		t.Fatalf("chart templates: %v %v", tmpl, err)
	}
	return append(files, tmpl...)
}

var settingName = regexp.MustCompile(`PARLEY_[A-Z][A-Z0-9_]*[A-Z0-9]`)

// TestDeploySettingsDocumented: every PARLEY_ variable that the Dockerfile,
// compose.yaml, the proxy configuration and the chart name is a setting of
// README's configuration table (and so, by TestReadmeConfigTable, of the
// code): a misspelt one would be silently ignored.
func TestDeploySettingsDocumented(t *testing.T) {
	documented := readmeSettings(t)
	seen := 0
	for _, f := range deployFiles(t) {
		for _, n := range settingName.FindAllString(read(t, f), -1) {
			seen++
			if !documented[n] {
				t.Errorf("%s names %s, which README's configuration table does not have", f, n)
			}
		}
	}
	if seen < 20 {
		t.Errorf("only %d PARLEY_ names found in the deployment files", seen)
	}
}

func TestDockerfile(t *testing.T) {
	d := read(t, filepath.Join(root, "Dockerfile"))
	for _, want := range []string{
		"FROM golang:1.26 AS build",
		"CGO_ENABLED=0 go build",
		"./app",
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"PARLEY_DATA_DIR=/data",
		"VOLUME /data",
		"EXPOSE 8080",
		"USER nonroot",
		"ENTRYPOINT [",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// The context must keep what the build embeds.
	for _, line := range strings.Split(read(t, filepath.Join(root, ".dockerignore")), "\n") {
		switch strings.TrimSpace(line) {
		case "static", "web", "app", "go.mod", "go.sum", "*.go", "**/*.go":
			t.Errorf(".dockerignore drops %q, which the build needs", line)
		}
	}
}

// loadCompose loads compose.yaml as docker compose would, with PARLEY_SECRET
// set (the file requires it).
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: types.Mapping{"PARLEY_SECRET": strings.Repeat("ab", 32)},
	}
	p, err := loader.LoadWithContext(ctx, details, func(o *loader.Options) { o.SetProjectName("parley", true) })
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	return p
}

func env(s types.ServiceConfig, name string) string {
	if v, ok := s.Environment[name]; ok && v != nil {
		return *v
	}
	return ""
}

func mustDuration(t *testing.T, what, v string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return d
}

// TestCompose: compose.yaml loads with the compose specification's loader
// and is the cluster the README describes.
func TestCompose(t *testing.T) {
	p := loadCompose(t)
	if _, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  p.WorkingDir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(p.WorkingDir, "compose.yaml")}},
		Environment: types.Mapping{},
	}); err == nil {
		t.Error("compose.yaml loads without PARLEY_SECRET; it must insist on one")
	}

	kafka, ok := p.Services["kafka"]
	if !ok {
		t.Fatal("no kafka service")
	}
	if !strings.HasPrefix(kafka.Image, "apache/kafka:") || env(kafka, "KAFKA_PROCESS_ROLES") != "broker,controller" ||
		env(kafka, "KAFKA_CONTROLLER_QUORUM_VOTERS") == "" || kafka.HealthCheck == nil {
		t.Errorf("kafka is not a KRaft apache/kafka with a health check: %s %v", kafka.Image, kafka.Environment)
	}
	mongo, ok := p.Services["mongo"]
	if !ok {
		t.Fatal("no mongo service")
	}
	if !strings.HasPrefix(mongo.Image, "mongo:7") || !slices.Contains(mongo.Command, "--replSet") ||
		mongo.HealthCheck == nil || !strings.Contains(strings.Join(mongo.HealthCheck.Test, " "), "rs.initiate") {
		t.Errorf("mongo is not mongo:7 as a replica set initiated by its health check: %s %v", mongo.Image, mongo.Command)
	}

	proxy, ok := p.Services["proxy"]
	if !ok {
		t.Fatal("no proxy service")
	}
	proxyIP := ""
	for _, n := range proxy.Networks {
		if n != nil && n.Ipv4Address != "" {
			proxyIP = n.Ipv4Address
		}
	}
	if proxyIP == "" {
		t.Error("the proxy has no fixed address for PARLEY_TRUSTED_PROXIES")
	}
	if proxy.HealthCheck == nil || !strings.Contains(strings.Join(proxy.HealthCheck.Test, " "), "/readyz") {
		t.Error("the proxy's health check does not ask /readyz")
	}
	caddyMounted := slices.ContainsFunc(proxy.Volumes, func(v types.ServiceVolumeConfig) bool {
		return strings.HasSuffix(v.Source, filepath.Join("app", "deploy", "proxy", "Caddyfile"))
	})
	if !caddyMounted {
		t.Errorf("the proxy does not mount app/deploy/proxy/Caddyfile: %+v", proxy.Volumes)
	}

	ids := map[string]bool{}
	secrets := map[string]bool{}
	var instances []string
	for name, s := range p.Services {
		if !strings.HasPrefix(name, "parley-") {
			continue
		}
		instances = append(instances, name)
		id := env(s, "PARLEY_INSTANCE_ID")
		if id == "" || ids[id] {
			t.Errorf("%s: PARLEY_INSTANCE_ID %q missing or shared", name, id)
		}
		ids[id] = true
		secrets[env(s, "PARLEY_SECRET")] = true
		if env(s, "PARLEY_KAFKA_BROKERS") != "kafka:9092" || !strings.Contains(env(s, "PARLEY_MONGO_URI"), "replicaSet=") {
			t.Errorf("%s: not on the compose Kafka and Mongo replica set: %v", name, s.Environment)
		}
		if env(s, "PARLEY_TRUSTED_PROXIES") != proxyIP {
			t.Errorf("%s: PARLEY_TRUSTED_PROXIES %q, want the proxy's %q", name, env(s, "PARLEY_TRUSTED_PROXIES"), proxyIP)
		}
		for _, dep := range []string{"kafka", "mongo"} {
			if s.DependsOn[dep].Condition != types.ServiceConditionHealthy {
				t.Errorf("%s does not wait for %s to be healthy", name, dep)
			}
		}
		delay := mustDuration(t, name+" PARLEY_SHUTDOWN_DELAY", env(s, "PARLEY_SHUTDOWN_DELAY"))
		timeout := mustDuration(t, name+" PARLEY_SHUTDOWN_TIMEOUT", env(s, "PARLEY_SHUTDOWN_TIMEOUT"))
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= delay+timeout {
			t.Errorf("%s: stop_grace_period %v is not above delay %v + timeout %v", name, s.StopGracePeriod, delay, timeout)
		}
		if !slices.Contains(proxy.GetDependencies(), name) {
			t.Errorf("the proxy does not depend on %s", name)
		}
	}
	if len(instances) != 3 {
		t.Errorf("%d Parley instances, want 3: %v", len(instances), instances)
	}
	if len(secrets) != 1 || secrets[""] {
		t.Errorf("the instances do not share one PARLEY_SECRET: %d distinct", len(secrets))
	}

	// The proxy routes to exactly these instances, checks /readyz, and
	// flushes SSE at once.
	caddy := read(t, "proxy/Caddyfile")
	for _, name := range instances {
		if !strings.Contains(caddy, name+":8080") {
			t.Errorf("Caddyfile does not route to %s", name)
		}
	}
	for _, want := range []string{"health_uri /readyz", "flush_interval -1", "reverse_proxy"} {
		if !strings.Contains(caddy, want) {
			t.Errorf("Caddyfile lacks %q", want)
		}
	}
}

// TestHelmRendered checks the chart as helm template rendered it: go tool
// task check:deploy renders it with pinned helm and runs this test with
// PARLEY_TEST_HELM_RENDERED naming the output. Without it the test skips:
// compiling helm is too slow for every go test run.
func TestHelmRendered(t *testing.T) {
	path := os.Getenv("PARLEY_TEST_HELM_RENDERED")
	if path == "" {
		t.Skip("PARLEY_TEST_HELM_RENDERED unset: go tool task check:deploy renders the chart and runs this test")
	}
	type object struct {
		Kind     string         `yaml:"kind"`
		Metadata map[string]any `yaml:"metadata"`
		Spec     yaml.Node      `yaml:"spec"`
	}
	objects := map[string]object{}
	dec := yaml.NewDecoder(strings.NewReader(read(t, path)))
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if o.Kind != "" {
			objects[o.Kind] = o
		}
	}
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget", "Secret"} {
		if _, ok := objects[kind]; !ok {
			t.Errorf("the chart renders no %s", kind)
		}
	}
	var dep struct {
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				Containers                    []struct {
					Env []struct {
						Name      string `yaml:"name"`
						Value     string `yaml:"value"`
						ValueFrom *struct {
							SecretKeyRef *struct {
								Name string `yaml:"name"`
							} `yaml:"secretKeyRef"`
							FieldRef *struct {
								FieldPath string `yaml:"fieldPath"`
							} `yaml:"fieldRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
					ReadinessProbe struct {
						HTTPGet struct {
							Path string `yaml:"path"`
						} `yaml:"httpGet"`
					} `yaml:"readinessProbe"`
					LivenessProbe struct {
						HTTPGet struct {
							Path string `yaml:"path"`
						} `yaml:"httpGet"`
					} `yaml:"livenessProbe"`
					Lifecycle struct {
						PreStop struct {
							Sleep struct {
								Seconds int `yaml:"seconds"`
							} `yaml:"sleep"`
						} `yaml:"preStop"`
					} `yaml:"lifecycle"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	}
	d := objects["Deployment"].Spec
	if err := d.Decode(&dep); err != nil {
		t.Fatal(err)
	}
	spec := dep.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: readiness %q, liveness %q; want /readyz, /healthz", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
	documented := readmeSettings(t)
	vals := map[string]string{}
	for _, e := range c.Env {
		if !documented[e.Name] {
			t.Errorf("the Deployment sets %s, which README's configuration table does not have", e.Name)
		}
		vals[e.Name] = e.Value
		switch e.Name {
		case "PARLEY_SECRET", "PARLEY_MONGO_URI":
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("%s does not come from a Secret", e.Name)
			}
		case "PARLEY_INSTANCE_ID":
			if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
				t.Errorf("PARLEY_INSTANCE_ID is not the pod's name: every pod needs its own fan-out group")
			}
		}
	}
	delay := mustDuration(t, "PARLEY_SHUTDOWN_DELAY", vals["PARLEY_SHUTDOWN_DELAY"])
	timeout := mustDuration(t, "PARLEY_SHUTDOWN_TIMEOUT", vals["PARLEY_SHUTDOWN_TIMEOUT"])
	if got := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second; got != delay || got == 0 {
		t.Errorf("preStop sleeps %v; PARLEY_SHUTDOWN_DELAY is %v", got, delay)
	}
	grace := time.Duration(spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= delay+timeout {
		t.Errorf("terminationGracePeriodSeconds %v is not above PARLEY_SHUTDOWN_DELAY %v + PARLEY_SHUTDOWN_TIMEOUT %v", grace, delay, timeout)
	}
}

// exportedMetrics are the metric names app/metrics.go registers (string
// literals parley_*), with the _bucket/_sum/_count series of each.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(root, "app", "metrics.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`^parley_[a-z0-9_]+$`)
	out := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, err := strconv.Unquote(lit.Value); err == nil && name.MatchString(s) {
				for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
					out[s+suffix] = true
				}
			}
		}
		return true
	})
	if !out["parley_consumer_lag"] || !out["parley_messages_received_total"] {
		t.Fatalf("app/metrics.go: metric names not found (%d)", len(out))
	}
	return out
}

// outsideMetrics are the series Prometheus and its blackbox exporter make:
// up for every scrape, probe_success for the /readyz probe.
var outsideMetrics = map[string]bool{"up": true, "probe_success": true}

var (
	selector   = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)
	parleyName = regexp.MustCompile(`\bparley_[a-z0-9_]+`)
)

// metricsIn are the metric names of PromQL expressions.
func metricsIn(exprs []string) map[string]bool {
	out := map[string]bool{}
	for _, e := range exprs {
		for _, m := range selector.FindAllStringSubmatch(e, -1) {
			out[m[1]] = true
		}
		for _, m := range parleyName.FindAllString(e, -1) {
			out[m] = true
		}
	}
	return out
}

func dashboardExprs(t *testing.T) []string {
	t.Helper()
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(read(t, "grafana/parley.json")), &dash); err != nil {
		t.Fatalf("grafana/parley.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	return exprs
}

func ruleExprs(t *testing.T) []string {
	t.Helper()
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal([]byte(read(t, "prometheus/alerts.yml")), &rules); err != nil {
		t.Fatalf("prometheus/alerts.yml: %v", err)
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

// TestDashboardAndRulesMetrics: every metric the dashboard and the alert
// rules query is one the server exports (or Prometheus's own up and the
// blackbox exporter's probe_success), and each shows what the operator
// needs.
func TestDashboardAndRulesMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	for what, exprs := range map[string][]string{"grafana/parley.json": dashboardExprs(t), "prometheus/alerts.yml": ruleExprs(t)} {
		used := metricsIn(exprs)
		for m := range used {
			if !exported[m] && !outsideMetrics[m] {
				t.Errorf("%s queries %s, which the server does not export", what, m)
			}
		}
		want := []string{"parley_consumer_lag", "parley_slow_clients_total", "parley_messages_acked_total", "up", "probe_success"}
		if what == "grafana/parley.json" {
			want = append(want, "parley_messages_received_total", "parley_messages_persisted_total", "parley_messages_delivered_total",
				"parley_end_to_end_seconds_bucket", "parley_produce_seconds_bucket", "parley_connections", "parley_refused_total")
		}
		for _, m := range want {
			if !used[m] {
				t.Errorf("%s does not query %s", what, m)
			}
		}
	}
}

// TestServer runs the real binary with PARLEY_LOG_FORMAT=json: every line
// it logs is one JSON object, an X-Request-ID is echoed, and every parley_
// metric it exposes is one the dashboard test knows of.
func TestServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "parley")
	build := exec.Command("go", "build", "-o", bin, "github.com/parley-chat/parley/app")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	baseEnv := append(os.Environ(), "PARLEY_ADDR=127.0.0.1:0", "PARLEY_DATA_DIR="+filepath.Join(dir, "data"),
		"PARLEY_KAFKA_BROKERS=", "PARLEY_MONGO_URI=")

	// A format it does not know is refused at start (exit 2), not ignored.
	bad := exec.Command(bin)
	bad.Env = slices.Concat(baseEnv, []string{"PARLEY_LOG_FORMAT=xml"})
	if out, err := bad.CombinedOutput(); bad.ProcessState == nil || bad.ProcessState.ExitCode() != 2 ||
		!strings.Contains(string(out), "PARLEY_LOG_FORMAT") {
		t.Errorf("PARLEY_LOG_FORMAT=xml: %v, %q; want exit 2 naming the setting", err, out)
	}

	cmd := exec.Command(bin)
	cmd.Env = slices.Concat(baseEnv, []string{"PARLEY_LOG_FORMAT=json"})
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var logged []string
	addr := ""
	deadline := time.After(30 * time.Second)
	for addr == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("server exited before listening: %v", logged)
			}
			logged = append(logged, l)
			var e struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(l), &e) == nil && e.Msg == "parley listening" {
				addr = e.Addr
			}
		case <-deadline:
			t.Fatalf("server not listening after 30 s: %v", logged)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
	req.Header.Set("X-Request-ID", "deploy-test-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-ID"); got != "deploy-test-1" {
		t.Errorf("X-Request-ID echoed as %q", got)
	}
	resp, err = http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	exported := exportedMetrics(t)
	families := 0
	for _, line := range bytes.Split(body, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" && strings.HasPrefix(f[2], "parley_") {
			families++
			if !exported[f[2]] {
				t.Errorf("the server exports %s, which app/metrics.go's names do not include", f[2])
			}
		}
	}
	if families < 8 {
		t.Errorf("only %d parley_ metric families scraped", families)
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		logged = append(logged, l)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("server exit: %v", err)
	}
	for _, l := range logged {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil || v["msg"] == nil || v["level"] == nil {
			t.Errorf("log line is not a slog JSON object: %q", l)
		}
	}
}
