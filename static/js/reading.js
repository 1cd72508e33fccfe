// Reading the open room: the "new messages" line where I left off, my read
// position sent as I read (PROTOCOL.md v2, "What you missed"), and a
// message shown and marked when the room is opened at it (a notification).
//
// A read position goes out only when the room is really being read: the
// page is visible, its window focused, and the newest message shown is in
// view. It goes at most once a second and only when it grows, whatever the
// scrolling: the server rate-limits reads per user, and every read is
// echoed to all my connections.

import { el } from './dom.js';
import { t } from './i18n.js';
import { state } from './state.js';
import { conn } from './transport.js';
import { ui } from './ui.js';
import { markRead, readPos } from './unread.js';

const READ_EVERY = 1000; // ms between two read positions sent, at least

let sentAt = 0;
let timer = 0;
const sent = new Map(); // room -> highest seq sent this visit

/** beingRead: the page is on screen and has the focus (a tab in the background reads nothing). */
const beingRead = () => document.visibilityState === 'visible' && document.hasFocus();

/** inView: li is (at least partly) inside the message pane's visible part. */
function inView(li) {
  const box = li.getBoundingClientRect();
  const pane = ui.pane.getBoundingClientRect();
  return box.bottom > pane.top && box.top < pane.bottom && box.height > 0;
}

/**
 * newestNode is the open room's node of its highest seq shown. The last seq
 * may be a lifecycle item, which has no line of its own: then the last
 * line before it stands for it.
 */
function newestNode(r) {
  if (!r.lastSeq) return null;
  const li = r.nodes.get(r.lastSeq);
  if (li) return li;
  let best = 0;
  for (const seq of r.nodes.keys()) if (seq < r.lastSeq && seq > best) best = seq;
  return best ? r.nodes.get(best) : null;
}

/**
 * maybeRead sends the open room's read position when it is being read and
 * its newest message is in view; throttled to one per READ_EVERY ms. Call
 * it on anything that may change that: a scroll, a message shown, focus.
 */
export function maybeRead() {
  const r = state.room;
  if (!r || r.denied || !r.lastSeq || !beingRead()) return;
  const seq = r.lastSeq;
  if (seq <= Math.max(readPos(r.name), sent.get(r.name) ?? 0)) return;
  const li = newestNode(r);
  if (!li || !inView(li)) return;
  const wait = sentAt + READ_EVERY - Date.now();
  if (wait > 0) {
    if (!timer) {
      timer = setTimeout(() => {
        timer = 0;
        maybeRead();
      }, wait);
    }
    return;
  }
  sentAt = Date.now();
  sent.set(r.name, seq);
  // Cleared here at once; the server's read frame clears my other tabs.
  markRead(r.name, seq);
  conn.read(r.name, seq).catch((err) => {
    // Not taken (rate limited, a network failure over SSE): the next
    // occasion sends it again.
    if (sent.get(r.name) === seq) sent.delete(r.name);
    console.info('parley: read position not sent:', err.message);
  });
}

/** bindReading sends the read position on what may bring the newest message into view. */
export function bindReading() {
  let scrolling = 0;
  ui.pane.addEventListener(
    'scroll',
    () => {
      // One check per frame at most: scroll events come by the dozen.
      if (scrolling) return;
      scrolling = requestAnimationFrame(() => {
        scrolling = 0;
        maybeRead();
      });
    },
    { passive: true },
  );
  window.addEventListener('focus', maybeRead);
  document.addEventListener('visibilitychange', maybeRead);
}

/**
 * showNewLine puts the "new messages" line above the first message of
 * someone else after r.readAt, when the room was opened with unread ones,
 * and returns it (null: none).
 */
export function showNewLine(r) {
  ui.list.querySelector('.new-line')?.remove();
  if (r.readAt == null || r.readAt >= r.lastSeq) return null;
  const first = [...r.nodes.entries()]
    .filter(([seq, li]) => seq > r.readAt && li.classList.contains('msg') && li.dataset.user !== state.me)
    .sort((a, b) => a[0] - b[0])[0];
  if (!first) return null;
  const line = el('li', { class: 'new-line', 'data-testid': 'new-messages', role: 'separator' }, el('span', { text: t('rooms.newMessages') }));
  first[1].before(line);
  return line;
}

/** showTarget scrolls to the message at seq of the open room and marks it; false when it is not shown. */
export function showTarget(r, seq) {
  const li = r.nodes.get(seq);
  if (!li) return false;
  for (const x of ui.list.querySelectorAll('.target')) x.classList.remove('target');
  li.classList.add('target');
  li.scrollIntoView({ block: 'center' });
  return true;
}
