// Incoming messages: one ordered pipeline per room. Messages of a room are
// shown in seq order, once each, with no gap: a jump in seq is filled from
// history before the later message is shown.

import { fillGap } from './history.js';
import { showLive } from './messages.js';
import { state } from './state.js';
import { conn } from './transport.js';

/** onIncoming takes a message from either transport. */
export function onIncoming(m) {
  const r = state.room;
  if (!r || !m || m.room !== r.name || !Number.isInteger(m.seq)) return;
  r.queue = r.queue.then(() => applyIncoming(r, m)).catch((err) => console.error('parley: applying message', err));
}

async function applyIncoming(r, m) {
  // Nothing of a room I may no longer read is shown, not even what was
  // already on its way (my own leave's item, say).
  if (r !== state.room || r.broken || r.denied || r.lastSeq === null) return;
  if (m.seq <= r.lastSeq) return; // already shown (replay overlap, or history got there first)
  if (m.seq > r.lastSeq + 1) {
    // Something was missed: show it first, from history, so order holds.
    const ok = await fillGap(r, m.seq - 1);
    if (r !== state.room) return;
    if (!ok) {
      r.broken = true;
      conn.restart('a gap in the message stream could not be filled');
      return;
    }
    if (m.seq <= r.lastSeq || r.denied) return;
  }
  showLive(r, m);
}

/** synced runs when the connection is (re)joined to room r: its replay follows, so stop dropping. */
export function synced(r) {
  r.queue = r.queue.then(() => {
    r.broken = false;
  });
}
