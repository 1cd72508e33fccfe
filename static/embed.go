// Package static is Parley's browser client: plain JavaScript (ES modules)
// and CSS with no build step, embedded into the binary so one file serves
// the whole UI. The server mounts Served at /static/ (e.g. /static/app.js,
// /static/app.css, /static/js/main.js).
//
// i18n/<lang>.json are the message catalogues, one per language of the UI
// (en, ko): the server renders the page with one and embeds the same one in
// it for the scripts (static/js/i18n.js), so a string lives in one place.
package static

import (
	"embed"
	"io/fs"
	"strings"
)

// FS holds the client files. The patterns are explicit so that nothing but
// the assets (no Go source, no editor leftovers) is ever served.
//
//go:embed *.js *.css *.svg js/*.js i18n/*.json
var FS embed.FS

// Served is FS as the server mounts it: a top-level folder may also be named
// with a version, "js@<version>/main.js" being "js/main.js". app.js imports
// the modules through such a path, taking the version from its own ?v=, so
// that every module of one page load is of one version, however long a
// browser caches them; the version itself is not checked, as ?v= is not.
var Served fs.FS = versioned{FS}

type versioned struct{ fs.FS }

func (v versioned) Open(name string) (fs.File, error) {
	if first, rest, ok := strings.Cut(name, "/"); ok {
		if dir, _, ok := strings.Cut(first, "@"); ok {
			name = dir + "/" + rest
		}
	}
	return v.FS.Open(name)
}
