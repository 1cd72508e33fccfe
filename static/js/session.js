// The session: kept fresh before its token expires, ended by the server
// (signedOut) or by the user (signOut).

import { api, call, onUnauthorized } from './api.js';
import { errorText, t } from './i18n.js';
import { notice } from './notice.js';
import { conn } from './transport.js';

/** The sign-in page says "Your session ended" when its address has ?ended=1. */
export const ENDED_PARAM = 'ended';

const MARGIN_MAX = 5 * 60_000; // refresh this long before expiry at most...
const MARGIN_SHARE = 0.1; // ...or this share of the token's lifetime, whichever is smaller...
const MARGIN_MIN = 5_000; // ...but never less than this: a busy machine's timers run late
const RETRY_MIN = 5_000; // a failed refresh is tried again after this, doubling
const RETRY_MAX = 60_000;

let refreshTimer = 0;
let refreshAt = 0; // when the next refresh is due (ms since the epoch); 0: none planned
let onFresh = null; // startSession's callback, for every new token
let ended = false;

/**
 * signedOut: the server no longer takes the session (revoked, expired, a
 * 401 anywhere). Back to the sign-in page, which says so.
 */
export function signedOut() {
  if (ended) return;
  ended = true;
  clearTimeout(refreshTimer);
  conn.stop();
  conn.setState('signedout');
  const u = new URL(location.href);
  u.searchParams.set(ENDED_PARAM, '1');
  location.replace(u.href); // keeps #room=..., so signing in again returns there
}

/** signOut ends the session on the server, then reloads to the sign-in page. */
export async function signOut(button) {
  button.disabled = true;
  // Stop first: the server ends this page's own connection with the
  // session, and that must not read as "your session ended".
  ended = true;
  clearTimeout(refreshTimer);
  conn.stop();
  try {
    await api('DELETE', '/api/session');
  } catch (err) {
    notice(t('session.signoutFailed', { error: errorText(err) }), { kind: 'error' });
    ended = false;
    button.disabled = false;
    conn.start();
    plan(refreshAt);
    return;
  }
  location.reload();
}

/**
 * startSession learns when the token expires, by refreshing it once (a page
 * loaded with a cookie cannot read the HttpOnly cookie), and keeps it fresh
 * from then on. It resolves once the cookie holds the new token, so that
 * connections opened after it use that one; `onSession` gets each answer
 * ({user, guest, expires}). False when the session turned out to be over
 * (the page is on its way to sign-in).
 */
export async function startSession(onSession) {
  onFresh = onSession;
  onUnauthorized(signedOut);
  // A timer is late after the machine slept, and throttled in a hidden tab:
  // a page shown again checks that it is not overdue.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && refreshAt && Date.now() >= refreshAt) refresh();
  });
  await refresh({ renew: false });
  return !ended;
}

/**
 * refresh trades the token for a new one of the same session; the server
 * sets the new cookie. With `renew`, the live connection is reopened so it
 * runs on the new token (the server ends a connection when the token it
 * was opened with expires).
 */
async function refresh({ renew = true, retry = RETRY_MIN } = {}) {
  clearTimeout(refreshTimer);
  refreshAt = 0;
  let s, res;
  try {
    ({ data: s, res } = await call('POST', '/api/session/refresh'));
  } catch (err) {
    if (err.status === 401 || ended) return; // a 401 has taken us to sign-in already
    console.warn('parley: refreshing the session:', err.message);
    refreshAt = Date.now() + retry;
    refreshTimer = setTimeout(() => refresh({ retry: Math.min(RETRY_MAX, retry * 2) }), retry);
    return;
  }
  if (ended) return;
  onFresh?.(s);
  if (renew) conn.renew();
  // Due a margin before expiry: 5 minutes, or a tenth of the lifetime when
  // that is shorter. The lifetime is counted on the server's clock (its
  // Date header, whole seconds: read as the end of its second), so a
  // client clock that is off does not make it late.
  const date = Date.parse(res.headers.get('Date'));
  const serverNow = Number.isNaN(date) ? Date.now() : date + 1000;
  const left = s.expires * 1000 - serverNow;
  plan(Date.now() + Math.max(1000, left - refreshMargin(left)));
}

/** refreshMargin is how long before expiry a token with `left` ms to live is refreshed. */
export function refreshMargin(left) {
  return Math.min(MARGIN_MAX, Math.max(MARGIN_MIN, left * MARGIN_SHARE));
}

function plan(at) {
  clearTimeout(refreshTimer);
  if (!at) return;
  refreshAt = at;
  refreshTimer = setTimeout(() => refresh(), Math.max(0, at - Date.now()));
}
