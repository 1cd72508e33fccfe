// Incoming messages of the open room. The client library delivers each
// message once, in seq order, with any gap filled from history first, and
// joins from the last seq shown; so what arrives here follows on lastSeq.

import { showLive } from './messages.js';
import { state } from './state.js';
import { conn } from './transport.js';

/** onIncoming takes a message from either transport. */
export function onIncoming(m) {
  const r = state.room;
  if (!r || !m || m.room !== r.name || !Number.isInteger(m.seq)) return;
  // Nothing of a room I may no longer read is shown, not even what was
  // already on its way (my own leave's item, say).
  if (r.denied || r.lastSeq === null) return;
  if (m.seq <= r.lastSeq) return; // already shown (history got there first)
  if (m.seq > r.lastSeq + 1) {
    // The page and the library disagree on the room's place: join afresh
    // from what is shown rather than show a message out of order.
    conn.rejoin(`seq ${m.seq} after ${r.lastSeq}`);
    return;
  }
  showLive(r, m);
}
