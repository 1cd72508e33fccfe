// The open room's messages on the page: in seq order, once each. Lifecycle
// items (edits, deletes, reactions) are not lines of their own: they fold
// into the message they are about (lifecycle.js).

import { decorate, refreshMessage, refreshQuotes } from './lifecycle.js';
import { resolvePending } from './outbox.js';
import { isLifecycle } from './parley-client.js';
import { maybeRead } from './reading.js';
import { renderSeen } from './receipts.js';
import { isDirectRoom, reloadSoon, roomEvent } from './room.js';
import { state } from './state.js';
import { messageNode, nearBottom, placeBySeq, regroup, scrollToBottom, updateEmpty } from './view.js';

/**
 * insertSequenced places a sequenced message of room r by seq; false if it
 * is shown already, or is a lifecycle item (folded into its target, which
 * is redrawn). upTo: m comes from history, folded by the server with the
 * lifecycle items up to that seq at least (see Timeline in parley-client.js).
 */
export function insertSequenced(r, m, { upTo } = {}) {
  if (r.oldestSeq === null || m.seq < r.oldestSeq) r.oldestSeq = m.seq;
  if (isLifecycle(m)) {
    const now = r.timeline.apply(m);
    if (now) refreshMessage(r, now.seq);
    return false;
  }
  if (r.nodes.has(m.seq)) return false;
  const cur = r.timeline.add(m, { upTo });
  const li = messageNode(cur, 'delivered');
  decorate(r, li, cur);
  placeBySeq(li, m.seq);
  r.nodes.set(m.seq, li);
  resolvePending(m);
  regroup(li);
  regroup(li.nextElementSibling);
  refreshQuotes(r, m.seq); // replies shown before their parent (an older page)
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
  else if (!r.info && !isLifecycle(m)) reloadSoon(); // the first message of a public room made it: read what it is
}
