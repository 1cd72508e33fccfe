package main

import (
	"os/exec"
	"strings"
	"testing"
)

// serverPackages are the packages the server binary is built from; the
// tools under app/tools (load generator, chaos, clients, local cluster, test
// gates) build on the server, never the other way round.
var serverPackages = []string{
	"./app", "./app/chat", "./handlers", "./kafka", "./kafka/membus",
	"./repository/...", "./web", "./static",
}

const toolsPrefix = "github.com/parley-chat/parley/app/tools"

// TestLayout fails when a server package depends, directly or through
// others, on a package under app/tools. Test files are not counted: a
// test may use the tools.
func TestLayout(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}"}, serverPackages...)
	cmd := exec.Command("go", args...)
	cmd.Dir = ".." // the module root
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list -deps: %v\n%s", err, msg)
	}
	n := 0
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		n++
		pkg, imports := fields[0], fields[1:]
		if isTool(pkg) {
			t.Errorf("the server depends on the tool %s", pkg)
		}
		for _, imp := range imports {
			if isTool(imp) && !isTool(pkg) {
				t.Errorf("%s imports %s: the server must not import app/tools", pkg, imp)
			}
		}
	}
	if n < len(serverPackages) {
		t.Fatalf("go list -deps listed %d packages, fewer than the %d asked for:\n%s", n, len(serverPackages), out)
	}
}

func isTool(pkg string) bool {
	return pkg == toolsPrefix || strings.HasPrefix(pkg, toolsPrefix+"/")
}
