// Parley's browser client starts here; the code is the ES modules in js/,
// served as they are, with no build step (js/main.js tells which does what).
//
// The page loads this file as /static/app.js?v=<hash>, the hash covering
// this file and every module (web/props.go). The modules are imported from
// /static/js@<hash>/, so relative imports among them carry the same version:
// a browser never mixes cached modules of an older server with newer ones.
// The server answers js@<anything>/x.js with js/x.js (static/embed.go).
const v = new URL(import.meta.url).searchParams.get('v');
import(v ? `./js@${v}/main.js` : './js/main.js').catch((err) => console.error('parley: loading the client', err));
