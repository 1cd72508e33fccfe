// History: GET /api/rooms/{room}/messages, for the first page of a room and
// for older pages as the reader scrolls up. (A gap in the live stream is
// filled by the client library, parley-client.js.)

import { api, roomPath } from './api.js';
import { errorText, t } from './i18n.js';
import { insertSequenced } from './messages.js';
import { notice } from './notice.js';
import { deny, loadRoom } from './room.js';
import { renderRoomList } from './rooms.js';
import { markSeen, state } from './state.js';
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
  try {
    page = await api('GET', `${roomPath(r.name)}/messages?limit=${PAGE_SIZE}`);
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
  for (const m of page.messages) insertSequenced(r, m);
  const last = page.messages.at(-1);
  r.lastSeq = Math.max(r.lastSeq ?? 0, last ? last.seq : 0);
  r.hasMore = page.has_more;
  markSeen(r.name, r.lastSeq);
  updateOlderButton();
  updateEmpty();
  scrollToBottom();
  renderRoomList();
  fillViewport(r);
  // The room's object and members: only for a room with a timeline, since
  // every existing room has at least its first item, and asking about one
  // that does not exist yet would be a 404 (a console error in the page).
  if (r.lastSeq > 0) loadRoom(r);
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
  try {
    const page = await api('GET', `${roomPath(r.name)}/messages?limit=${PAGE_SIZE}&before=${r.oldestSeq}`);
    if (r !== state.room || r.denied) return false;
    const height = ui.pane.scrollHeight;
    const top = ui.pane.scrollTop;
    for (const m of page.messages) insertSequenced(r, m);
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
