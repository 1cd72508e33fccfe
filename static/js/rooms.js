// The sidebar: the rooms I am a member of (GET /api/rooms, paged by name),
// in two sections, rooms and direct messages.

import { api } from './api.js';
import { $, countText, el } from './dom.js';
import { errorText, t } from './i18n.js';
import { notice } from './notice.js';
import { signedOut } from './session.js';
import { state } from './state.js';
import { ui } from './ui.js';
import { counts, fromRoomObject } from './unread.js';

const ROOMS_PAGE = 100; // rooms per GET /api/rooms page (the server allows 1-200)

/**
 * Rooms as the server listed them: name -> room object ({room, kind, title,
 * last_seq, role, with}; a v1 server gives only room and last_seq). GET
 * /api/rooms is paged by name and lists the rooms I am a member of. The
 * periodic refresh reads the first page; "More rooms…" reads the next one
 * from moreCursor. Pages are merged, so what "More" brought stays listed;
 * a room is dropped when a page that covers its name no longer lists it
 * (I left, or was removed), or at once by forgetRoom.
 */
const knownRooms = new Map();
let moreCursor = null; // next_cursor of the last page read; null: nothing more
let morePages = false; // "More" was used: its cursor, not the first page's, is next
let loadingMore = false;
const listeners = new Set(); // called after every refresh, for the open room's head

/** onRoomsRefreshed adds fn, called with no argument after each refresh of the list. */
export function onRoomsRefreshed(fn) {
  listeners.add(fn);
}

/**
 * mergeRooms takes one page. The page covers every name up to its last one
 * (all names when it is the last page): a known room in that range that the
 * page does not list is no longer mine.
 */
function mergeRooms(data, { first = false } = {}) {
  const rooms = data.rooms || [];
  const listed = new Set(rooms.map((x) => x.room));
  if (first) {
    const upto = data.next_cursor ? rooms.at(-1)?.room : null;
    for (const name of knownRooms.keys()) {
      if (!listed.has(name) && (upto === null || name <= upto)) knownRooms.delete(name);
    }
  }
  for (const x of rooms) {
    knownRooms.set(x.room, x);
    fromRoomObject(x);
  }
}

/**
 * listedRooms is the room objects the list holds, in the order their badges
 * matter: direct rooms first (everything in them is for me), then by name.
 */
export const listedRooms = () =>
  [...knownRooms.values()].sort((a, b) => (isDirect(b) ? 1 : 0) - (isDirect(a) ? 1 : 0) || (a.room < b.room ? -1 : a.room > b.room ? 1 : 0));

/** roomInfo is what the list knows of room name, or undefined. */
export const roomInfo = (name) => knownRooms.get(name);

/** rememberRoom lists a room object at once (one I just created, joined or opened a DM in). */
export function rememberRoom(obj) {
  if (!obj?.room) return;
  knownRooms.set(obj.room, { ...knownRooms.get(obj.room), ...obj });
  fromRoomObject(obj);
  renderRoomList();
}

/** forgetRoom drops a room from the list at once (I left it, or was removed). */
export function forgetRoom(name) {
  knownRooms.delete(name);
  renderRoomList();
}

export async function refreshRooms() {
  try {
    const data = await api('GET', `/api/rooms?limit=${ROOMS_PAGE}`);
    mergeRooms(data, { first: true });
    if (!morePages) moreCursor = data.next_cursor ?? null;
    renderRoomList();
    for (const fn of listeners) fn();
  } catch (err) {
    if (err.status === 401) signedOut();
    // Otherwise keep the last list; the connection indicator tells the story.
  }
}

export async function loadMoreRooms() {
  if (loadingMore || !moreCursor) return;
  loadingMore = true;
  renderRoomList();
  try {
    const data = await api('GET', `/api/rooms?limit=${ROOMS_PAGE}&cursor=${encodeURIComponent(moreCursor)}`);
    mergeRooms(data);
    morePages = true;
    moreCursor = data.next_cursor ?? null;
  } catch (err) {
    if (err.status === 401) signedOut();
    else notice(t('rooms.moreFailed', { error: errorText(err) }), { kind: 'error' });
  } finally {
    loadingMore = false;
    renderRoomList();
  }
}

const isDirect = (x) => x?.kind === 'direct';

/** roomItem builds one entry of either list: a link to #room=<name>. */
function roomItem(name, direct) {
  const mark = direct
    ? el('span', { class: 'hash', 'aria-hidden': 'true', text: '@' })
    : el('span', { class: 'hash', 'aria-hidden': 'true', text: '#' });
  return el(
    'li',
    { class: 'room', 'data-testid': direct ? 'dm-item' : 'room-item', dataset: { room: name } },
    el(
      'a',
      { href: `#room=${encodeURIComponent(name)}` },
      mark,
      el('span', { class: 'room-label', dir: 'auto' }),
      // A private room's mark: a lock drawn by app.css, and words for screen readers.
      el('span', { class: 'room-lock', hidden: true }, el('span', { class: 'visually-hidden' })),
      el('span', { class: 'room-badge', 'data-testid': 'room-badge', hidden: true }),
      el('span', { class: 'room-mention', 'data-testid': 'room-mention', hidden: true }),
    ),
  );
}

/** renderList updates one list in place (keyed by room), so focus and hover survive refreshes. */
function renderList(list, names, direct) {
  const room = state.room;
  const existing = new Map([...list.children].map((li) => [li.dataset.room, li]));
  names.forEach((name, i) => {
    let li = existing.get(name);
    if (!li) li = roomItem(name, direct);
    existing.delete(name);
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    const info = knownRooms.get(name);
    const current = room?.name === name;
    li.classList.toggle('current', current);
    const a = $('a', li);
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
    // A direct room is named after the other person; a room by its name,
    // its title (when it has one) as the tooltip.
    $('.room-label', li).textContent = direct ? info?.with || name : name;
    a.title = direct ? t('rooms.directWith', { user: info?.with || name }) : info?.title || '';
    const lock = $('.room-lock', li);
    lock.hidden = info?.kind !== 'private';
    lock.firstChild.textContent = lock.hidden ? '' : t('rooms.private');
    renderBadges(li, name);
  });
  for (const li of existing.values()) li.remove();
}

/**
 * renderBadges shows room's counts on its entry: the unread count, or, when
 * some are for me, the mention count in a distinct mark (a direct room's
 * unread are all for me). data-unread and data-mentions hold both counts.
 */
function renderBadges(li, name) {
  // The open room's own count would only flicker: it is cleared as I read.
  const { unread, mentions } = state.room?.name === name ? { unread: 0, mentions: 0 } : counts(name);
  const badge = $('.room-badge', li);
  const mention = $('.room-mention', li);
  const plain = mentions > 0 ? 0 : unread;
  badge.hidden = plain === 0;
  badge.textContent = plain ? countText(plain) : '';
  badge.setAttribute('aria-label', plain ? t('rooms.unread', { n: plain }) : '');
  mention.hidden = mentions === 0;
  mention.textContent = mentions ? countText(mentions) : '';
  mention.setAttribute('aria-label', mentions ? t('rooms.mentions', { n: mentions, unread }) : '');
  li.dataset.unread = String(unread);
  li.dataset.mentions = String(mentions);
  li.classList.toggle('unread', unread > 0);
}

/** renderBadge redraws the badges of room name only (a count changed). */
export function renderBadge(name) {
  for (const list of [ui.roomList, ui.dmList]) {
    const li = [...list.children].find((x) => x.dataset.room === name);
    if (li) renderBadges(li, name);
  }
}

export function renderRoomList() {
  const room = state.room;
  const names = new Set(knownRooms.keys());
  // The open room is always shown (the server lists a public room only once
  // I have written in it, and it may be on a page not read yet), unless I
  // may not read it: then nothing of it is shown, not even here.
  if (room && !room.denied) names.add(room.name);
  const sorted = [...names].sort();
  const direct = (name) => isDirect(knownRooms.get(name)) || (room?.name === name && isDirect(room.info));
  const dms = sorted.filter(direct);
  renderList(ui.roomList, sorted.filter((n) => !direct(n)), false);
  renderList(ui.dmList, dms, true);
  ui.dmEmpty.hidden = dms.length > 0;
  ui.roomsMore.hidden = !moreCursor;
  ui.roomsMore.disabled = loadingMore;
  ui.roomsMore.textContent = loadingMore ? t('common.loading') : t('chat.rooms.more');
}
