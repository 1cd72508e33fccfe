// The bell: my notifications (PROTOCOL.md v2, "What you missed"), a
// mention or a direct message I had not read in time. GET
// /api/notifications gives them a page at a time (the latest page first,
// next_cursor paging older), notification frames add them live; each is
// kept once by id. The bell counts those newer than the newest one I saw
// when I last opened the panel, kept in localStorage so that every tab (and
// the next visit) agrees.

import { api } from './api.js';
import { countText, el } from './dom.js';
import { errorText, lang, t } from './i18n.js';
import { openRoomAt } from './nav.js';
import { bindPush } from './push.js';
import { state } from './state.js';
import { ui } from './ui.js';

const PAGE = 50; // notifications per GET /api/notifications page

const timeFmt = new Intl.DateTimeFormat(lang(), { dateStyle: 'short', timeStyle: 'short' });

const notes = new Map(); // id -> notification
let cursor = null; // next_cursor of the oldest page read; null: nothing older
let loaded = false;
let loading = false;
let seenHere = null; // the last seen when localStorage cannot keep it

const seenKey = () => `parley.notifications.seen.${state.me}`;

/** order sorts notifications like the server: by ts, then id. */
const order = (a, b) => (a.ts === b.ts ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : a.ts < b.ts ? -1 : 1);

/** lastSeen is the newest notification seen when the panel was last opened: {ts, id}, or null. */
function lastSeen() {
  try {
    const v = JSON.parse(localStorage.getItem(seenKey()) || 'null');
    if (v && typeof v.ts === 'string' && typeof v.id === 'string') return seenHere && order(seenHere, v) > 0 ? seenHere : v;
  } catch {
    /* no storage, or not JSON */
  }
  return seenHere;
}

/** unseen counts the notifications newer than the last seen. */
function unseen() {
  const seen = lastSeen();
  let n = 0;
  for (const x of notes.values()) if (!seen || order(x, seen) > 0) n++;
  return n;
}

function renderCount() {
  const n = unseen();
  ui.bellCount.hidden = n === 0;
  ui.bellCount.textContent = countText(n);
  ui.bell.setAttribute('aria-label', n ? t('chat.bell.openCount', { n }) : t('chat.bell.open'));
}

function add(x) {
  if (!x || typeof x.id !== 'string' || notes.has(x.id)) return false;
  notes.set(x.id, x);
  return true;
}

/** noteItem is one entry of the list: who, where, the text, when; a click opens the room at the message. */
function noteItem(x) {
  const date = new Date(x.ts);
  const where = x.kind === 'direct' ? t('chat.bell.direct', { user: x.from }) : t('chat.bell.mention', { user: x.from, room: x.room });
  return el(
    'li',
    {},
    el(
      'button',
      {
        type: 'button',
        class: 'bell-item',
        'data-testid': 'bell-item',
        dataset: { id: x.id, room: x.room, seq: String(x.seq), kind: x.kind },
        onclick: () => {
          ui.bellPanel.hidePopover();
          openRoomAt(x.room, x.seq);
        },
      },
      el('span', { class: 'bell-where', dir: 'auto', text: where }),
      el('span', { class: 'bell-text', dir: 'auto', text: x.text }),
      el('time', { class: 'msg-time', datetime: Number.isNaN(date.getTime()) ? '' : date.toISOString(), text: Number.isNaN(date.getTime()) ? '' : timeFmt.format(date) }),
    ),
  );
}

function renderList() {
  const list = [...notes.values()].sort(order).reverse();
  ui.bellList.replaceChildren(...list.map(noteItem));
  ui.bellEmpty.hidden = !loaded || list.length > 0;
  ui.bellMore.hidden = !cursor;
  ui.bellMore.disabled = loading;
}

/** loadPage reads the latest page (first) or the one older than cursor. */
async function loadPage(older) {
  if (loading || (older && !cursor)) return;
  loading = true;
  renderList();
  try {
    const q = older ? `&before=${encodeURIComponent(cursor)}` : '';
    const data = await api('GET', `/api/notifications?limit=${PAGE}${q}`);
    for (const x of data?.notifications || []) add(x);
    if (older || !loaded) cursor = data?.next_cursor ?? null;
    loaded = true;
    ui.bellStatus.hidden = true;
  } catch (err) {
    ui.bellStatus.textContent = t('chat.bell.failed', { error: errorText(err) });
    ui.bellStatus.hidden = false;
  } finally {
    loading = false;
    renderList();
    if (ui.bellPanel.matches(':popover-open')) markAllSeen();
    renderCount();
  }
}

/** markAllSeen: the panel was opened; what it lists is seen. */
function markAllSeen() {
  const newest = [...notes.values()].sort(order).at(-1);
  if (!newest) return;
  const seen = lastSeen();
  if (seen && order(newest, seen) <= 0) return;
  try {
    localStorage.setItem(seenKey(), JSON.stringify({ ts: newest.ts, id: newest.id }));
  } catch {
    // No storage (a private mode, a full quota): the count is this visit's only.
    seenHere = { ts: newest.ts, id: newest.id };
  }
  renderCount();
}

/** onNotification takes a live notification (a frame, once per id). */
export function onNotification(x) {
  if (!add(x)) return;
  renderList();
  if (ui.bellPanel.matches(':popover-open')) markAllSeen();
  else renderCount();
}

/** bindBell wires the bell and its panel (loadNotifications reads the latest page). */
export function bindBell() {
  ui.bell.addEventListener('click', () => {
    if (ui.bellPanel.matches(':popover-open')) return ui.bellPanel.hidePopover();
    ui.bellPanel.showPopover();
    const a = ui.bell.getBoundingClientRect();
    const m = ui.bellPanel.getBoundingClientRect();
    ui.bellPanel.style.setProperty('left', `${Math.max(8, Math.min(a.right - m.width, window.innerWidth - m.width - 8))}px`);
    ui.bellPanel.style.setProperty('top', `${a.bottom + 4}px`);
    if (!loaded) loadPage(false);
    markAllSeen();
  });
  ui.bellPanel.addEventListener('toggle', (ev) => {
    ui.bell.setAttribute('aria-expanded', String(ev.newState === 'open'));
    if (ev.newState === 'open') bindPush();
  });
  ui.bellMore.addEventListener('click', () => loadPage(true));
  // Another tab opened its panel: the count follows.
  window.addEventListener('storage', (ev) => {
    if (ev.key === seenKey()) renderCount();
  });
}

/** loadNotifications reads the latest page, for the bell's count (once the session is known good: a 401 signs out). */
export function loadNotifications() {
  if (!loaded) loadPage(false);
}
