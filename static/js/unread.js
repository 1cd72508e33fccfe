// Unread and mention counts per room, for the sidebar's badges (PROTOCOL.md
// v2, "What you missed").
//
// The server's room objects carry read_seq, unread and mentions, as of the
// room's last_seq when it answered: a snapshot. Between two snapshots the
// counts are kept live here: a message from someone else after my read
// position adds one (and a mention when its `mentions` names me); a read
// frame (from any of my tabs, on any instance) or a message of my own (the
// server moves my read position to what I send) clears up to its seq.
//
// Live messages are kept per room past the snapshot, so that a snapshot
// older than them (the list answered before they were stored) adds them
// rather than losing them, and a read up to one of them clears exactly the
// ones before it. A read that ends inside the snapshot's own range cannot
// be counted here (the snapshot says how many, not which): the list is then
// asked again soon, and meanwhile the snapshot's numbers stand.

import { state } from './state.js';

// Live messages remembered one by one per room past its snapshot; older
// ones are folded into the snapshot's numbers (until the next snapshot).
const LIVE_KEPT = 500;

/**
 * room -> {base, snapRead, unread, mentions: the last snapshot (its last_seq,
 * read_seq and counts); read: my read position as known here; live: [{seq,
 * mention}] the messages of others after base; direct; known: a snapshot
 * came; asked: the read the list was asked again about}
 */
const rooms = new Map();
let onChange = () => {};
let askAgain = () => {};

/** bindUnread sets what redraws the badges and what reads the room list again. */
export function bindUnread({ changed, refresh }) {
  onChange = changed;
  askAgain = refresh;
}

function entry(name) {
  let e = rooms.get(name);
  if (!e) {
    e = { base: 0, snapRead: 0, unread: 0, mentions: 0, read: 0, live: [], direct: false, known: false, asked: -1 };
    rooms.set(name, e);
  }
  return e;
}

let againTimer = 0;
function refreshSoon() {
  clearTimeout(againTimer);
  againTimer = setTimeout(() => askAgain(), 1000);
}

/**
 * fromRoomObject takes a room object of the server (the list, the room
 * itself): its counts become the snapshot, unless live messages are ahead
 * of it, which then count on top.
 */
export function fromRoomObject(o) {
  if (!o?.room) return;
  if (!Number.isInteger(o.unread)) {
    if (o.kind) entry(o.room).direct = o.kind === 'direct';
    return; // a server without counts: live ones only
  }
  const e = entry(o.room);
  const last = o.last_seq || 0;
  if (e.known && last < e.base) return; // older than what is known
  e.known = true;
  e.direct = o.kind === 'direct';
  e.base = last;
  e.snapRead = o.read_seq || 0;
  e.unread = o.unread;
  e.mentions = o.mentions || 0;
  e.live = e.live.filter((x) => x.seq > last);
  if (e.read > e.snapRead && e.read < last) {
    // A read the snapshot has not seen: not stored yet when it answered
    // (ask again), or, asked once already, never taken (the server's word
    // stands).
    if (e.asked === e.read) e.read = e.snapRead;
    else {
      e.asked = e.read;
      refreshSoon();
    }
  }
  e.read = Math.max(e.read, e.snapRead);
  onChange(o.room);
}

/** readPos is my read position in room as known here (0: none, or not known). */
export const readPos = (name) => rooms.get(name)?.read ?? 0;

/** known: the server gave counts for room (a server of v2 with the stores for them). */
export const known = (name) => !!rooms.get(name)?.known;

/**
 * counts is what the badge of room shows: unread messages and mentions;
 * a direct room's unread all count as mentions (they are all for me).
 */
export function counts(name) {
  const e = rooms.get(name);
  if (!e) return { unread: 0, mentions: 0 };
  let unread = 0;
  let mentions = 0;
  // The snapshot's part: all read, none read, or (a read inside it) as it said until the list answers again.
  if (e.read < e.base) {
    unread = e.unread;
    mentions = e.mentions;
  }
  for (const x of e.live) {
    if (x.seq > e.read) {
      unread++;
      if (x.mention) mentions++;
    }
  }
  if (e.direct) mentions = unread;
  return { unread, mentions };
}

/** onMessage counts a live message (any joined room, in seq order per room). */
export function onMessage(m) {
  if (!m?.room || !Number.isInteger(m.seq)) return;
  const e = entry(m.room);
  if (m.seq <= e.base || m.seq <= (e.live.at(-1)?.seq ?? 0)) return; // counted already (live is in seq order)
  if (m.user === state.me) {
    // What I send moves my read position to it (no read frame says so).
    markRead(m.room, m.seq);
    return;
  }
  if (m.kind) return; // timeline events are not counted
  e.live.push({ seq: m.seq, mention: Array.isArray(m.mentions) && m.mentions.includes(state.me) });
  if (e.live.length > LIVE_KEPT) fold(e, e.live.shift());
  if (m.seq > e.read) onChange(m.room);
}

/**
 * fold counts live message x into room entry e's snapshot, which then ends
 * at x: as though the server had answered just after it.
 */
function fold(e, x) {
  if (e.read >= e.base) {
    // The snapshot's part was all read: it restarts from my read position.
    e.unread = 0;
    e.mentions = 0;
    e.snapRead = e.read;
  }
  if (x.seq > e.read) {
    e.unread++;
    if (x.mention) e.mentions++;
  }
  e.base = x.seq;
}

/** markRead moves my read position in room up to seq (a read frame, a read I sent, a message of mine). */
export function markRead(name, seq) {
  const e = entry(name);
  if (seq <= e.read) return;
  e.read = seq;
  if (e.read > e.snapRead && e.read < e.base) refreshSoon();
  onChange(name);
}
