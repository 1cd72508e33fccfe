// What the chat page knows: who I am, the open room, what I have seen and
// what I have sent that has no seq yet. Plain data; the modules that change
// it are named after what they do (history, live, outbox, rooms).

import { Timeline } from './parley-client.js';

export const state = {
  me: '', // the signed-in user (body data-user)
  /**
   * The open room. Only one room is open at a time; switching rooms replaces
   * this object, and every async step checks `r === state.room` before
   * touching the page, so a late answer for a room already left is dropped.
   */
  room: null,
};

export function newRoom(name, { readAt = null, target = null } = {}) {
  return {
    name,
    readAt, // my read position when I opened it (null: not known): the "new messages" line goes after it
    target, // a seq to open the room at (a notification, ?seq=), or null: the latest
    receipts: new Map(), // user -> read position, in a direct room (GET .../receipts, receipt frames)
    lastSeq: null, // highest seq shown with nothing missing below it; null until history is loaded
    oldestSeq: null, // lowest seq shown, for ?before=
    hasMore: false, // history has older messages than oldestSeq
    loadingOlder: false,
    nodes: new Map(), // seq -> <li>, to drop duplicates
    timeline: new Timeline(), // the messages as they stand, lifecycle items folded in (lifecycle.js)
    replyTo: null, // the seq the composer's next message answers, or null
    history: null, // promise of the first history page (memoized, reset on failure)
    info: null, // the room object (GET /api/rooms/{room}): kind, title, topic, slow_mode_s, my role, with
    members: null, // user -> {user, role, guest, muted_until}, once GET .../members answered
    bans: null, // [{user, until, reason}] for an owner or moderator, once GET .../bans answered
    /**
     * Why I may not read the room, or null: {code: 'not_found'} (no such
     * room, or a private one I am not in: the server does not say which),
     * {code: 'forbidden'} (banned), {code: 'removed'|'banned'} (it happened
     * while I had it open). Nothing of such a room is shown.
     */
    denied: null,
  };
}

/** Messages sent but not yet seen come back with a seq: id -> entry. */
export const pending = new Map();
