// Incoming messages of the open room. The client library delivers each
// message once, in seq order, a gap filled from history first (history is
// the authority on what lies between: seqs it skips, of a room from before
// I was let in, are none of mine), and joins from the last seq shown; so
// what arrives here comes next after lastSeq.

import { showLive } from './messages.js';
import { state } from './state.js';

/** onIncoming takes a message from either transport. */
export function onIncoming(m) {
  const r = state.room;
  if (!r || !m || m.room !== r.name || !Number.isInteger(m.seq)) return;
  // Nothing of a room I may no longer read is shown, not even what was
  // already on its way (my own leave's item, say).
  if (r.denied || r.lastSeq === null) return;
  if (m.seq <= r.lastSeq) return; // already shown (history got there first)
  showLive(r, m);
}
