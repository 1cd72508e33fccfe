// Navigation: the open room is #room=<name>; the room form and the room
// drawer (narrow screens) lead there.

import { t } from './i18n.js';
import { renderReplyBar } from './lifecycle.js';
import { notice } from './notice.js';
import { attachPending } from './outbox.js';
import { showTarget } from './reading.js';
import { renderHead } from './room.js';
import { renderRoomList } from './rooms.js';
import { newRoom, pending, state } from './state.js';
import { conn } from './transport.js';
import { ui } from './ui.js';
import { known, readPos } from './unread.js';
import { setPaneStatus, updateEmpty, updateOlderButton } from './view.js';

const ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const DEFAULT_ROOM = 'general';

export function roomFromHash() {
  const name = new URLSearchParams(location.hash.slice(1)).get('room');
  if (name && ROOM_RE.test(name)) return name;
  if (name) notice(t('nav.notRoom', { name, rule: t('nav.roomRule') }), { kind: 'error' });
  return DEFAULT_ROOM;
}

/**
 * openRoom shows room `name`: its head, history and members, and moves the
 * live connection there. With `force`, the open room is opened afresh (I was
 * let into a room that showed as one I may not read). With `at`, it opens
 * at that seq (the message is shown and marked) rather than at the latest.
 */
export function openRoom(name, { force = false, at = null } = {}) {
  if (state.room?.name === name && !force) return;
  const from = state.room?.name;
  state.room = newRoom(name, { readAt: known(name) ? readPos(name) : null, target: at });
  ui.list.replaceChildren();
  setPaneStatus('');
  renderHead();
  renderReplyBar();
  updateOlderButton();
  updateEmpty();
  // Sends to this room still waiting for their seq are shown again.
  for (const entry of pending.values()) if (entry.room === name) attachPending(entry);
  renderRoomList();
  closeSidebar();
  conn.roomChanged(from);
}

/**
 * openRoomAt opens room `name` at its message `seq` (a notification, a
 * push's ?room=&seq=): marked at once when the open room shows it, else the
 * room is opened afresh around it. The address says the room, as a click
 * on its link would.
 */
export function openRoomAt(name, seq) {
  const r = state.room;
  if (r?.name === name && !r.denied && showTarget(r, seq)) return;
  openRoom(name, { force: true, at: seq });
  if (location.hash !== `#room=${name}`) history.pushState(null, '', `${location.pathname}${location.search}#room=${name}`);
}

/** goToRoom opens room `name` through the address, as a click on its link does. */
export function goToRoom(name) {
  if (state.room?.name === name) openRoom(name, { force: !!state.room.denied });
  else location.hash = `room=${name}`;
}

// Narrow screens: the room list is a drawer.
function closeSidebar() {
  document.body.classList.remove('rooms-open');
  ui.roomsToggle.setAttribute('aria-expanded', 'false');
  ui.scrim.hidden = true;
}

export function bindNav() {
  window.addEventListener('hashchange', () => openRoom(roomFromHash()));

  ui.roomForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = ui.roomInput.value.trim();
    const ok = ROOM_RE.test(name);
    ui.roomError.textContent = ok ? '' : name ? t('nav.invalidRoom', { name, rule: t('nav.roomRule') }) : t('nav.emptyRoom');
    ui.roomError.hidden = ok;
    ui.roomInput.setAttribute('aria-invalid', ok ? 'false' : 'true');
    if (!ok) return;
    ui.roomInput.value = '';
    location.hash = `room=${name}`; // hashchange opens it; a new room comes into being on join
  });
  ui.roomInput.addEventListener('input', () => {
    ui.roomError.hidden = true;
    ui.roomInput.removeAttribute('aria-invalid');
  });

  ui.roomsToggle.addEventListener('click', () => {
    const open = !document.body.classList.contains('rooms-open');
    document.body.classList.toggle('rooms-open', open);
    ui.roomsToggle.setAttribute('aria-expanded', String(open));
    ui.scrim.hidden = !open;
  });
  ui.scrim.addEventListener('click', closeSidebar);
}
