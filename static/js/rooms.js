// The room list: GET /api/rooms, paged by name, merged into one sorted list.

import { api } from './api.js';
import { $, el } from './dom.js';
import { t } from './i18n.js';
import { notice } from './notice.js';
import { signedOut } from './session.js';
import { seenSeq, state } from './state.js';
import { ui } from './ui.js';

const ROOMS_PAGE = 100; // rooms per GET /api/rooms page (the server allows 1-200)

/**
 * Rooms as the server listed them: name -> last_seq. GET /api/rooms is
 * paged by name and lists only rooms that have had a message. The periodic
 * refresh reads the first page; "More rooms…" reads the next one from
 * moreCursor. Pages are merged (rooms are never removed), so what "More"
 * brought stays listed, with the last_seq of when it was read.
 */
const knownRooms = new Map();
let moreCursor = null; // next_cursor of the last page read; null: nothing more
let morePages = false; // "More" was used: its cursor, not the first page's, is next
let loadingMore = false;

function mergeRooms(data) {
  for (const x of data.rooms || []) knownRooms.set(x.room, x.last_seq);
}

export async function refreshRooms() {
  try {
    const data = await api('GET', `/api/rooms?limit=${ROOMS_PAGE}`);
    mergeRooms(data);
    if (!morePages) moreCursor = data.next_cursor ?? null;
    renderRoomList();
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
    else notice(t('rooms.moreFailed', { error: err.message }), { kind: 'error' });
  } finally {
    loadingMore = false;
    renderRoomList();
  }
}

/** renderRoomList updates the list in place (keyed by room), so focus and hover survive refreshes. */
export function renderRoomList() {
  const room = state.room;
  const names = new Set(knownRooms.keys());
  // The open room is always shown: the server lists a room only once it
  // has a message, and it may be on a page not read yet.
  if (room) names.add(room.name);
  const sorted = [...names].sort();
  const existing = new Map([...ui.roomList.children].map((li) => [li.dataset.room, li]));
  sorted.forEach((name, i) => {
    let li = existing.get(name);
    if (!li) {
      li = el(
        'li',
        { class: 'room', 'data-testid': 'room-item', dataset: { room: name } },
        el(
          'a',
          { href: `#room=${encodeURIComponent(name)}` },
          el('span', { class: 'hash', 'aria-hidden': 'true', text: '#' }),
          el('span', { class: 'room-label', text: name }),
          el('span', { class: 'room-badge', 'aria-label': t('rooms.newMessages'), hidden: true }),
        ),
      );
    }
    existing.delete(name);
    if (ui.roomList.children[i] !== li) ui.roomList.insertBefore(li, ui.roomList.children[i] || null);
    const current = room?.name === name;
    li.classList.toggle('current', current);
    const a = $('a', li);
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
    const last = knownRooms.get(name) || 0;
    const seen = seenSeq.get(name);
    $('.room-badge', li).hidden = current || seen === undefined || last <= seen;
  });
  for (const li of existing.values()) li.remove();
  ui.roomsMore.hidden = !moreCursor;
  ui.roomsMore.disabled = loadingMore;
  ui.roomsMore.textContent = loadingMore ? t('common.loading') : t('chat.rooms.more');
}
