// The open room beyond its messages: what it is (GET /api/rooms/{room}),
// who is in it (.../members, .../bans), what I may do there, and what
// happens when its timeline says it changed or I was put out of it.
//
// The server decides every action (PROTOCOL.md v2, "Rooms with members");
// the rules mirrored here only choose what to offer, so that nobody is shown
// a button the server would refuse.

import { api, roomPath } from './api.js';
import { errorText, t } from './i18n.js';
import { notice } from './notice.js';
import { loadReceipts } from './receipts.js';
import { forgetRoom, renderRoomList, roomInfo } from './rooms.js';
import { state } from './state.js';
import { ui } from './ui.js';
import { fromRoomObject } from './unread.js';
import { setPaneStatus, updateEmpty, updateOlderButton } from './view.js';

const RANK = { owner: 3, moderator: 2, member: 1 };

/** rank orders roles: owner 3, moderator 2, member 1, none 0. */
export const rank = (role) => RANK[role] || 0;

let renderMembers = () => {}; // members.js's, set by onMembersChanged

/** onMembersChanged sets what redraws the member list (members.js). */
export function onMembersChanged(fn) {
  renderMembers = fn;
}

/** myRole is my role in room r, null when I am not a member (or do not know yet). */
export const myRole = (r) => r?.info?.role ?? null;

/** isDirectRoom: r is a direct room (of two people, without settings or moderation). */
export const isDirectRoom = (r) => r?.info?.kind === 'direct';

/** moderates: I am an owner or a moderator of r (which is not a direct room). */
export const moderates = (r) => !isDirectRoom(r) && rank(myRole(r)) >= 2;

/** mutedUntil is the end of user's mute in r (a Date), or null when not muted. */
export function mutedUntil(r, user) {
  const until = r?.members?.get(user)?.muted_until;
  const d = until ? new Date(until) : null;
  return d && d > new Date() ? d : null;
}

/**
 * actionsOn lists what I may do to user in room r, as the server's rules
 * allow (app/chat/room.go, Check): on myself only leaving; on others, a
 * direct message, and, where I outrank them, moderation: an owner on
 * everyone but owners, a moderator on plain members (and non-members).
 */
export function actionsOn(r, user) {
  const out = [];
  const direct = isDirectRoom(r);
  if (user === state.me) {
    if (!direct && myRole(r) && !r.denied) out.push('leave');
    return out;
  }
  out.push('dm');
  if (direct || r.denied || !r.info) return out;
  const mine = rank(myRole(r));
  const member = r.members?.get(user);
  const theirs = rank(member?.role);
  if (myRole(r) === 'owner' && member?.role === 'member') out.push('promote');
  if (myRole(r) === 'owner' && member?.role === 'moderator') out.push('demote');
  if (mine >= 2 && mine > theirs) {
    if (member) out.push('remove');
    if (mutedUntil(r, user)) out.push('unmute');
    else out.push('mute1h', 'mute1d');
    out.push('ban1h', 'ban1d', 'banForever');
  }
  return out;
}

/** mayAdd: I may add people to r (any member of a public room; an owner or moderator of a private one). */
export function mayAdd(r) {
  if (!r?.info || r.denied || isDirectRoom(r) || !myRole(r)) return false;
  return r.info.kind === 'public' || moderates(r);
}

/**
 * loadRoom reads room r's object, members and (for an owner or moderator)
 * bans, then redraws what shows them. A room that does not exist yet (a
 * public room before its first message) has no object: it shows as its name.
 */
export async function loadRoom(r) {
  if (r.denied) return;
  let info = null;
  try {
    info = await api('GET', roomPath(r.name));
  } catch (err) {
    if (err.status !== 404 && err.status !== 403) console.warn('parley: reading the room:', err.message);
  }
  if (r !== state.room || r.denied) return;
  r.info = info;
  fromRoomObject(info);
  renderHead();
  renderRoomList();
  loadReceipts(r);
  if (!info) {
    r.members = new Map();
    r.bans = null;
    renderMembers();
    return;
  }
  const [members, bans] = await Promise.all([
    api('GET', `${roomPath(r.name)}/members`).catch(() => null),
    moderates(r) ? api('GET', `${roomPath(r.name)}/bans`).catch(() => null) : null,
  ]);
  if (r !== state.room || r.denied) return;
  if (members) r.members = new Map((members.members || []).map((m) => [m.user, m]));
  r.bans = bans ? bans.bans || [] : null;
  renderHead();
  renderMembers();
}

let reloadTimer = 0;

/** reloadSoon reads the open room again shortly: several changes in a row cost one read. */
export function reloadSoon() {
  clearTimeout(reloadTimer);
  const r = state.room;
  reloadTimer = setTimeout(() => {
    if (r === state.room) loadRoom(r);
  }, 150);
}

/**
 * roomEvent takes a timeline item of kind "member" that arrived live in the
 * open room r: what it changed is read again; one that puts me out of the
 * room ends it here, as the server's "left" frame does.
 */
export function roomEvent(r, m) {
  const d = m.data || {};
  if ((d.action === 'remove' || d.action === 'ban') && d.target === state.me) {
    putOut(r.name, d.action === 'ban' ? 'banned' : 'removed');
    return;
  }
  reloadSoon();
}

/**
 * putOut: I was removed from or banned in room `name`, or left it (here or
 * on another connection): a "left" frame with a reason, or the item that did
 * it. The room goes from the sidebar; when it
 * is the open one, what was shown of it goes too, and a plain sentence says
 * why. Idempotent: both signs usually arrive.
 */
export function putOut(name, reason) {
  const r = state.room;
  const open = r?.name === name;
  const already = open && ['removed', 'banned', 'left'].includes(r.denied?.code);
  forgetRoom(name);
  if (!open || already) return;
  const why = ['banned', 'left'].includes(reason) ? reason : 'removed';
  deny(r, { code: why });
  if (why === 'left') notice(t('room.youLeft', { room: name }));
  else notice(why === 'banned' ? t('room.bannedFrom', { room: name }) : t('room.removedFrom', { room: name }), { kind: 'error', sticky: true });
}

/**
 * deny shows room r as one I may not read: its messages, members, title and
 * topic go; the pane says why; the composer and the room's buttons go quiet.
 */
export function deny(r, why) {
  r.denied = why;
  r.info = null;
  r.members = null;
  r.bans = null;
  r.hasMore = false;
  r.nodes.clear();
  r.timeline.clear();
  r.replyTo = null; // nothing left to answer
  ui.replyBar.hidden = true;
  ui.list.replaceChildren();
  if (r === state.room) {
    setPaneStatus(deniedText(r));
    updateOlderButton();
    updateEmpty();
    renderHead();
    renderMembers();
    renderRoomList();
  }
}

function deniedText(r) {
  switch (r.denied?.code) {
    case 'removed':
      return t('room.removedFrom', { room: r.name });
    case 'banned':
      return t('room.bannedFrom', { room: r.name });
    case 'left':
      return t('room.youLeft', { room: r.name });
    case 'forbidden':
      return t('room.forbidden', { room: r.name, error: errorText(r.denied) });
    default:
      return t('room.notFound', { room: r.name });
  }
}

/** roomLabel is how room r is named in its head: @the other person for a direct room, else its name. */
function roomLabel(r) {
  if (isDirectRoom(r)) return r.info.with || r.name;
  return r.name;
}

/** renderHead shows the open room's name, kind, title, topic and slow mode, and the buttons I may use. */
export function renderHead() {
  const r = state.room;
  if (!r) return;
  const info = r.denied ? null : r.info || null;
  const direct = isDirectRoom(r);
  ui.roomHash.textContent = direct ? '@' : '#';
  ui.roomName.textContent = roomLabel(r);
  ui.startRoom.textContent = roomLabel(r);
  document.title = `${direct ? '@' : '#'}${roomLabel(r)} · Parley`;
  ui.input.placeholder = direct ? t('chat.message.placeholderDirect', { user: roomLabel(r) }) : t('chat.message.placeholderRoom', { room: r.name });

  ui.roomKind.hidden = !info || info.kind === 'public';
  ui.roomKind.textContent = info?.kind === 'private' ? t('room.kind.private') : info?.kind === 'direct' ? t('room.kind.direct') : '';
  ui.roomKind.dataset.kind = info?.kind || '';
  const slow = info?.slow_mode_s || 0;
  ui.roomSlow.hidden = !slow;
  ui.roomSlow.textContent = slow ? t('room.slowMode', { s: slow }) : '';
  const title = info?.title || '';
  const topic = info?.topic || '';
  ui.roomDisplayTitle.textContent = title;
  ui.roomDisplayTitle.hidden = !title;
  ui.roomTopic.textContent = topic;
  ui.roomTopic.hidden = !topic;
  ui.roomSub.hidden = !title && !topic;

  // Joining from the room itself: a public room I may read but am not in.
  ui.joinPublic.hidden = !info || info.kind !== 'public' || !!info.role;
  ui.settingsOpen.hidden = !info || !moderates(r);
  ui.membersToggle.hidden = !!r.denied || !info;
  const n = r.members?.size;
  ui.membersCount.textContent = n ? String(n) : '';
  ui.membersToggle.setAttribute('aria-label', n ? t('chat.members.toggleCount', { n }) : t('chat.members.toggle'));

  // Deleting others' messages is a moderator's (lifecycle.js offers it so).
  ui.list.classList.toggle('moderating', moderates(r));

  const closed = !!r.denied;
  ui.input.disabled = closed;
  ui.sendButton.disabled = closed;
}

/** joinPublic makes me a member of the open public room (POST .../members with my name). */
export async function joinPublic() {
  const r = state.room;
  if (!r) return;
  ui.joinPublic.disabled = true;
  try {
    await api('POST', `${roomPath(r.name)}/members`, { user: state.me });
    await loadRoom(r);
  } catch (err) {
    notice(errorText(err), { kind: 'error' });
  } finally {
    ui.joinPublic.disabled = false;
  }
}

/** isKnownMember: the sidebar lists room name as mine (for a room I was let into while it showed as denied). */
export const isKnownMember = (name) => !!roomInfo(name);
