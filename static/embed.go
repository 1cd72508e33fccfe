// Package static is Parley's browser client: plain JavaScript and CSS with no
// build step, embedded into the binary so one file serves the whole UI. The
// server mounts FS at /static/ (e.g. /static/app.js, /static/app.css).
package static

import "embed"

// FS holds the client files. The patterns are explicit so that nothing but
// the assets (no Go source, no editor leftovers) is ever served.
//
//go:embed *.js *.css *.svg
var FS embed.FS
