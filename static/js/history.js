// History: GET /api/rooms/{room}/messages, for the first page of a room and
// for older pages as the reader scrolls up. (A gap in the live stream is
// filled by the client library, parley-client.js.)

import { api, roomPath } from './api.js';
import { errorText, t } from './i18n.js';
import { insertSequenced } from './messages.js';
import { maybeRead, showNewLine, showTarget } from './reading.js';
import { notice } from './notice.js';
import { deny, loadRoom } from './room.js';
import { renderRoomList } from './rooms.js';
import { state } from './state.js';
import { ui } from './ui.js';
import { scrollToBottom, setPaneStatus, updateEmpty, updateOlderButton } from './view.js';

const PAGE_SIZE = 50; // history page when opening a room or scrolling up

/** ensureHistory loads the latest page once per room visit; the live connection joins after it. */
export function ensureHistory(r) {
  r.history ??= loadLatest(r).catch((err) => {
    r.history = null; // try again on the next connect
    if (r === state.room) setPaneStatus(t('history.retrying', { error: errorText(err) }));
    throw err;
  });
  return r.history;
}

async function loadLatest(r) {
  setPaneStatus(t('history.loading'));
  let page;
  const at = r.target;
  try {
    // Opened at a message (a notification): the page up to it, then what
    // follows; else the latest page.
    page = await api('GET', `${roomPath(r.name)}/messages?limit=${PAGE_SIZE}${at ? `&before=${at + 1}` : ''}`);
  } catch (err) {
    // 404: no such room, or a private one I am not in (the server does not
    // say which); 403: I am banned. Either way there is nothing to show or
    // join, and trying again would not change that.
    if (err.status !== 404 && err.status !== 403) throw err;
    if (r === state.room) deny(r, { code: err.status === 403 ? 'forbidden' : 'not_found', message: err.message, key: err.key, params: err.params });
    else r.denied = { code: 'not_found' };
    return;
  }
  if (r !== state.room || r.denied) return; // put out of it meanwhile
  setPaneStatus('');
  // History comes folded with every lifecycle item stored when it answered,
  // at least those up to its last seq (see Timeline in parley-client.js).
  const last = page.messages.at(-1);
  const upTo = Math.max(r.lastSeq ?? 0, last ? last.seq : 0);
  for (const m of page.messages) insertSequenced(r, m, { upTo });
  r.lastSeq = upTo;
  r.hasMore = page.has_more;
  if (at) await loadNewer(r);
  if (r !== state.room || r.denied) return;
  updateOlderButton();
  updateEmpty();
  const line = showNewLine(r);
  if (at && showTarget(r, at)) {
    // shown and marked
  } else if (line) line.scrollIntoView({ block: 'start' });
  else scrollToBottom();
  renderRoomList();
  if (!at) fillViewport(r);
  maybeRead();
  // The room's object and members: only for a room with a timeline, since
  // every existing room has at least its first item, and asking about one
  // that does not exist yet would be a 404 (a console error in the page).
  if (r.lastSeq > 0) loadRoom(r);
}

/**
 * loadNewer reads the page after r.lastSeq (a room opened at a message), so
 * that the message is shown with what followed it; the live join, after
 * lastSeq, replays whatever lies beyond.
 */
async function loadNewer(r) {
  const page = await api('GET', `${roomPath(r.name)}/messages?limit=${PAGE_SIZE}&after=${r.lastSeq}`);
  if (r !== state.room || r.denied) return;
  const last = page.messages.at(-1);
  const upTo = Math.max(r.lastSeq, last ? last.seq : 0);
  for (const m of page.messages) insertSequenced(r, m, { upTo });
  r.lastSeq = upTo;
}

/** Keep loading older pages while the pane has no scroll bar to pull on. */
async function fillViewport(r) {
  for (let i = 0; i < 5 && r === state.room && r.hasMore && ui.pane.scrollHeight <= ui.pane.clientHeight; i++) {
    if (!(await loadOlder())) break;
  }
}

/** loadOlder prepends the page just before the oldest shown message, keeping what the reader sees in place. */
export async function loadOlder() {
  const r = state.room;
  if (!r || !r.hasMore || r.loadingOlder || r.oldestSeq === null) return false;
  r.loadingOlder = true;
  updateOlderButton();
  // Every lifecycle item up to the last seq shown was stored before this
  // page is asked for: it comes folded with them at least.
  const upTo = r.lastSeq ?? 0;
  try {
    const page = await api('GET', `${roomPath(r.name)}/messages?limit=${PAGE_SIZE}&before=${r.oldestSeq}`);
    if (r !== state.room || r.denied) return false;
    const height = ui.pane.scrollHeight;
    const top = ui.pane.scrollTop;
    for (const m of page.messages) insertSequenced(r, m, { upTo });
    r.hasMore = page.has_more && page.messages.length > 0;
    updateEmpty();
    ui.pane.scrollTop = top + (ui.pane.scrollHeight - height);
    return true;
  } catch (err) {
    notice(t('history.olderFailed', { error: errorText(err) }), { kind: 'error' });
    return false;
  } finally {
    r.loadingOlder = false;
    if (r === state.room) updateOlderButton();
  }
}
