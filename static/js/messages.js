// The open room's messages on the page: in seq order, once each.

import { resolvePending } from './outbox.js';
import { maybeRead } from './reading.js';
import { renderSeen } from './receipts.js';
import { isDirectRoom, reloadSoon, roomEvent } from './room.js';
import { state } from './state.js';
import { messageNode, nearBottom, placeBySeq, regroup, scrollToBottom, updateEmpty } from './view.js';

/** insertSequenced places a sequenced message of room r by seq; false if it is shown already. */
export function insertSequenced(r, m) {
  if (r.nodes.has(m.seq)) return false;
  const li = messageNode(m, 'delivered');
  placeBySeq(li, m.seq);
  r.nodes.set(m.seq, li);
  if (r.oldestSeq === null || m.seq < r.oldestSeq) r.oldestSeq = m.seq;
  resolvePending(m);
  regroup(li);
  regroup(li.nextElementSibling);
  return true;
}

/** showLive adds the next message of the room at the bottom (the first after lastSeq). */
export function showLive(r, m) {
  const stick = nearBottom() || m.user === state.me;
  insertSequenced(r, m);
  r.lastSeq = m.seq;
  updateEmpty();
  if (stick) scrollToBottom();
  maybeRead();
  if (r.receipts.size || isDirectRoom(r)) renderSeen(r);
  if (m.kind === 'member') roomEvent(r, m);
  else if (!r.info) reloadSoon(); // the first message of a public room made it: read what it is
}
