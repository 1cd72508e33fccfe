package main

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/static"
	"github.com/parley-chat/parley/web"
)

// serverKeyPrefix prefixes, in the browser's catalogues, the key of a
// server error (chat.Error.Key): static/js/i18n.js errorText.
const serverKeyPrefix = "server."

// errorKeys returns every key a server error can carry, each with the
// place it comes from: the format of every chat.Errorf call in the
// module's non-test Go files, the fixed texts of the handlers' HTTP-layer
// answers (fiberMessages, statusError, unsupported), the sign-in page's
// notices of a failed OIDC sign-in (oidcNotices) and chat's own keys.
// A call whose format is not a string literal is a problem: its key
// cannot be checked, so no translation can be promised for it.
func errorKeys(t *testing.T) (keys map[string]string, problems []string) {
	t.Helper()
	keys = map[string]string{
		chat.KeyInternal: "chat.KeyInternal",
		chat.KeyRefused:  "chat.KeyRefused",
	}
	fset := token.NewFileSet()
	literal := func(e ast.Expr) (string, bool) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(lit.Value)
		return s, err == nil
	}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		inChat := f.Name.Name == "chat"
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				name := ""
				switch fn := n.Fun.(type) {
				case *ast.SelectorExpr:
					if x, ok := fn.X.(*ast.Ident); ok && x.Name == "chat" {
						name = "chat." + fn.Sel.Name
					}
				case *ast.Ident:
					name = fn.Name
					if inChat {
						name = "chat." + fn.Name
					}
				}
				switch {
				case name == "chat.Errorf" && len(n.Args) >= 2:
					if s, ok := literal(n.Args[1]); ok {
						keys[s] = fset.Position(n.Pos()).String()
					} else {
						problems = append(problems, fset.Position(n.Pos()).String()+": chat.Errorf with a format that is not a string literal")
					}
				case name == "unsupported" && f.Name.Name == "handlers" && len(n.Args) == 1:
					if s, ok := literal(n.Args[0]); ok {
						keys[s] = fset.Position(n.Pos()).String()
					} else {
						problems = append(problems, fset.Position(n.Pos()).String()+": unsupported with a text that is not a string literal")
					}
				}
			case *ast.CompositeLit:
				if id, ok := n.Type.(*ast.Ident); ok && id.Name == "statusError" {
					for _, el := range n.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok {
							if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "msg" {
								if s, ok := literal(kv.Value); ok {
									keys[s] = fset.Position(n.Pos()).String()
								}
							}
						}
					}
				}
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if (id.Name != "fiberMessages" && id.Name != "oidcNotices") || i >= len(n.Values) {
						continue
					}
					for _, el := range n.Values[i].(*ast.CompositeLit).Elts {
						if s, ok := literal(el.(*ast.KeyValueExpr).Value); ok {
							keys[s] = fset.Position(el.Pos()).String()
						}
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys, problems
}

// Every error the server can send is translated in every catalogue of the
// browser UI, with a placeholder {0}, {1}, ... for each of its parameters
// and no other; and no catalogue keeps the translation of an error no code
// makes any more. A new chat.Errorf fails here until both catalogues say it.
func TestServerErrorsTranslated(t *testing.T) {
	keys, problems := errorKeys(t)
	for _, p := range problems {
		t.Error(p)
	}
	// The walk must see the domain, the handlers and the stores.
	for _, k := range []string{"text must be at most %d characters", "wrong name or password", "the name is taken", "no such route", "request bodies must be Content-Type: application/json", "The identity provider did not sign you in."} {
		if _, ok := keys[k]; !ok {
			t.Fatalf("the key %q was not found: is the walk still right?", k)
		}
	}
	placeholder := regexp.MustCompile(`\{(\w+)\}`)
	for _, lang := range web.Langs {
		b, err := fs.ReadFile(static.FS, "i18n/"+lang+".json")
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]string
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s.json: %v", lang, err)
		}
		for _, key := range slices.Sorted(maps.Keys(keys)) {
			s, ok := c[serverKeyPrefix+key]
			if !ok {
				t.Errorf("%s.json lacks %q (%s)", lang, serverKeyPrefix+key, keys[key])
				continue
			}
			var want, got []string
			for i := range chat.FormatVerbs(key) {
				want = append(want, strconv.Itoa(i))
			}
			for _, m := range placeholder.FindAllStringSubmatch(s, -1) {
				got = append(got, m[1])
			}
			slices.Sort(got)
			got = slices.Compact(got)
			if strings.TrimSpace(s) == "" || !slices.Equal(got, want) {
				t.Errorf("%s.json: %q is %q: placeholders %v, want %v", lang, serverKeyPrefix+key, s, got, want)
			}
		}
		for key := range c {
			if k, ok := strings.CutPrefix(key, serverKeyPrefix); ok {
				if _, used := keys[k]; !used {
					t.Errorf("%s.json has %q, which no error of the server has", lang, key)
				}
			}
		}
	}
}
