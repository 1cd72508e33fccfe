package static

import (
	"io/fs"
	"regexp"
	"testing"
)

// Every relative import of every module names a module that is embedded, so
// that no build step is needed to find out that one is missing or misspelt.
func TestImportsResolve(t *testing.T) {
	imports := regexp.MustCompile(`(?m)^import .* from '\./([\w.-]+)';$`)
	modules, err := fs.Glob(FS, "js/*.js")
	if err != nil || len(modules) == 0 {
		t.Fatalf("no modules in js/: %v", err)
	}
	for _, name := range modules {
		b, err := fs.ReadFile(FS, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range imports.FindAllSubmatch(b, -1) {
			if _, err := fs.Stat(FS, "js/"+string(m[1])); err != nil {
				t.Errorf("%s imports %s: %v", name, m[1], err)
			}
		}
	}
	if _, err := fs.Stat(FS, "js/main.js"); err != nil {
		t.Errorf("app.js loads js/main.js: %v", err)
	}
}

// Served answers a versioned folder with the plain one, and nothing else.
func TestServedVersionedPath(t *testing.T) {
	want, err := fs.ReadFile(FS, "js/main.js")
	if err != nil {
		t.Fatal(err)
	}
	got, err := fs.ReadFile(Served, "js@0123abcd/main.js")
	if err != nil || string(got) != string(want) {
		t.Errorf("js@0123abcd/main.js: %v, same bytes: %v", err, string(got) == string(want))
	}
	for _, name := range []string{"js@x/nope.js", "js@x/../embed.go", "embed.go", "app.js@x"} {
		if _, err := fs.ReadFile(Served, name); err == nil {
			t.Errorf("%s: served", name)
		}
	}
}
