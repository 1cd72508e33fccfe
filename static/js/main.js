// Parley browser client: plain JavaScript modules, no build step, no
// framework. The page is rendered by the server (web/index.templ); this
// module finds it by data-page and brings it to life:
//
//   sign-in page  signin.js: guest, password or new account, then reload.
//   chat page     rooms.js (the sidebar: GET /api/rooms, paged; rooms and
//                 direct messages), room.js (the open room's object, members,
//                 what I may do there, its timeline events, being put out),
//                 members.js (the member list, a person's menu), dialogs.js
//                 (create a room, the directory, settings), history.js (GET
//                 .../messages), transport.js (the live connection on the
//                 client library parley-client.js: WebSocket /ws, or SSE +
//                 POST as a fallback; resume, gaps filled, sends retried
//                 under the same id), outbox.js (pending, sent and failed
//                 sends, Retry), live.js (the open room's live messages),
//                 view.js and messages.js (the DOM), nav.js (#room=),
//                 composer.js, lifecycle.js (replies, edits, deletes,
//                 reactions, folded into their messages), session.js (refresh before expiry, back
//                 to sign-in when the session ends); what I missed:
//                 unread.js (the badges' counts), reading.js (the
//                 new-messages line, my read position sent as I read, a
//                 room opened at a message), receipts.js ("Seen" in direct
//                 rooms), notifications.js (the bell), push.js (browser
//                 push through /sw.js); this file wires them together.
//   both pages    i18n.js: every string shown, from the page's catalogue,
//                 and the language switcher.
//
// The wire contract is shared/PROTOCOL.md. Rules that hold throughout:
//   - user text and user names reach the DOM only as text nodes (textContent,
//     Node.append(string)), never as HTML;
//   - messages of a room are shown in seq order, once each, with no gap: a
//     jump in seq is filled from history before the later message is shown;
//   - nothing here needs 'unsafe-inline' or 'unsafe-eval': the server's CSP
//     (handlers/headers.go) refuses inline script, style attributes, eval
//     and javascript: URLs, and the browser test fails on any violation.

import { bindComposer } from './composer.js';
import { bindDialogs } from './dialogs.js';
import { ensureHistory, loadOlder } from './history.js';
import { bindLangSwitch } from './i18n.js';
import { bindLifecycle } from './lifecycle.js';
import { onIncoming } from './live.js';
import { bindMembers } from './members.js';
import { bindNav, openRoom, openRoomAt, roomFromHash } from './nav.js';
import { bindBell, loadNotifications, onNotification } from './notifications.js';
import { flushPending, onErrorFrame } from './outbox.js';
import { onServiceWorkerOpen } from './push.js';
import { bindReading } from './reading.js';
import { onReceipt } from './receipts.js';
import { deny, isKnownMember, joinPublic, putOut } from './room.js';
import { listedRooms, loadMoreRooms, onRoomsRefreshed, refreshRooms, renderBadge } from './rooms.js';
import { signOut, signedOut, startSession } from './session.js';
import { initSignIn } from './signin.js';
import { state } from './state.js';
import { conn } from './transport.js';
import { bindUI, ui } from './ui.js';
import { bindUnread, markRead, onMessage } from './unread.js';

const ROOMS_EVERY = 10_000;

async function initApp() {
  state.me = document.body.dataset.user;
  bindUI();

  conn.on = {
    prepare: ensureHistory,
    // Every joined room's messages count for its badge; the open room's are shown.
    message(m) {
      onMessage(m);
      onIncoming(m);
    },
    errorFrame: onErrorFrame,
    live() {
      flushPending();
      refreshRooms();
    },
    read: ({ room, seq }) => markRead(room, seq),
    receipt: onReceipt,
    notification: onNotification,
    putOut,
    // A join refused: no such room (or a private one I am not in), or I am
    // banned. The open room then shows as one I may not read.
    denied(room, err) {
      const r = state.room;
      if (r?.name === room && !r.denied && ['not_found', 'forbidden'].includes(err.code)) deny(r, { code: err.code, message: err.message, key: err.key, params: err.params });
      else onErrorFrame({ code: err.code, message: err.message, key: err.key, params: err.params, room });
    },
    // Added to a room, or a direct room made with me, on any instance: the
    // list shows it now rather than at its next periodic refresh.
    membership: () => refreshRooms(),
    signedOut,
  };

  bindUnread({ changed: renderBadge, refresh: refreshRooms });
  bindNav();
  bindReading();
  bindBell();
  onServiceWorkerOpen(openRoomAt);
  bindComposer();
  bindLifecycle();
  bindMembers();
  bindDialogs();
  ui.joinPublic.addEventListener('click', () => joinPublic());
  // Let into the room that is open but showed as one I may not read (added
  // to a private room, say): the list says so; open it afresh.
  onRoomsRefreshed(() => {
    const r = state.room;
    if (r?.denied && isKnownMember(r.name)) openRoom(r.name, { force: true });
    // The rooms of the list stay joined (over WebSocket), for their badges.
    conn.watch(listedRooms());
  });
  ui.roomsMore.addEventListener('click', () => loadMoreRooms());
  ui.loadOlder.addEventListener('click', () => loadOlder());
  ui.pane.addEventListener('scroll', () => {
    if (ui.pane.scrollTop < 60) loadOlder();
  });
  ui.signout.addEventListener('click', () => signOut(ui.signout));

  // A push's click opens /?room=<room>&seq=<seq> (static/sw.js): that room at that message.
  const q = new URLSearchParams(location.search);
  const at = Number(q.get('seq'));
  const pushed = q.get('room') && Number.isInteger(at) && at > 0 ? q.get('room') : '';
  q.delete('room');
  q.delete('seq');
  const search = q.size ? `?${q}` : '';
  if (pushed) history.replaceState(null, '', `${location.pathname}${search}#room=${encodeURIComponent(pushed)}`);
  const first = roomFromHash();
  history.replaceState(null, '', `${location.pathname}${search}#room=${first}`);
  conn.render();
  // Shows the room; connects once conn.start() has run (history first, then join).
  openRoom(first, { at: pushed === first ? at : null });
  // The first refresh comes first: connections opened after it run on the
  // new token, whose expiry the refresh timer knows.
  const live = await startSession((s) => {
    ui.userGuest.hidden = !s.guest;
  });
  if (!live) return;
  conn.start();
  refreshRooms();
  loadNotifications();
  setInterval(refreshRooms, ROOMS_EVERY);
}

bindLangSwitch();
if (document.body.dataset.page === 'signin') initSignIn();
else if (document.body.dataset.page === 'app') initApp().catch((err) => console.error('parley: starting', err));
