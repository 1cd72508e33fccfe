// The page's language. The server renders the page in it (web/index.templ,
// <html lang>) and embeds its message catalogue, static/i18n/<lang>.json,
// as <script type="application/json" id="i18n">: data, not script, so the
// CSP allows it and no build step is needed. Every string the scripts show
// comes from here.

const LANG_COOKIE = 'parley_lang'; // web.LangCookie
const YEAR = 365 * 24 * 3600;

let messages = null;

function catalogue() {
  if (!messages) {
    try {
      messages = JSON.parse(document.getElementById('i18n')?.textContent || '{}');
    } catch {
      messages = {};
    }
  }
  return messages;
}

/** lang is the page's language, e.g. "ko", for Intl formats. */
export const lang = () => document.documentElement.lang || 'en';

/** t is the message key with each {name} replaced by params[name]; a missing key shows as itself. */
export function t(key, params = {}) {
  const s = catalogue()[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/**
 * errorText is what the page says of a server error ({code, message, key,
 * params}: an ApiError, a ParleyError, an error frame): the catalogue's
 * "server.<key>" with {0}, {1}, ... as its params when the catalogue has
 * it, else the server's own (English) message. app/catalog_test.go keeps
 * the catalogues holding every key the server makes.
 */
export function errorText(err) {
  if (!err) return '';
  const key = err.key && `server.${err.key}`;
  if (key && Object.hasOwn(catalogue(), key)) return t(key, Array.isArray(err.params) ? err.params : []);
  return err.message || err.code || '';
}

/** bindLangSwitch makes the switcher keep the chosen language in a cookie and reload in it. */
export function bindLangSwitch() {
  const sel = document.querySelector('[data-testid="lang-switch"]');
  if (!sel) return;
  sel.addEventListener('change', () => {
    document.cookie = `${LANG_COOKIE}=${encodeURIComponent(sel.value)}; Path=/; Max-Age=${YEAR}; SameSite=Lax`;
    location.reload();
  });
  sel.disabled = false;
}
