// Read receipts in a direct room: "Seen" under my last message that the
// other person has read (PROTOCOL.md v2, "What you missed"). Their read
// position comes from GET .../receipts when the room opens, then from
// receipt frames; a message of theirs says they read everything before it
// (the server moves an author's read position to what they send, and sends
// no receipt for that).

import { api, roomPath } from './api.js';
import { el } from './dom.js';
import { t } from './i18n.js';
import { isDirectRoom } from './room.js';
import { state } from './state.js';
import { ui } from './ui.js';

/** other is the other person of direct room r ('' when not known yet). */
const other = (r) => r.info?.with || '';

/** loadReceipts reads the read positions of open direct room r, then shows "Seen". */
export async function loadReceipts(r) {
  if (!isDirectRoom(r) || r.denied) return;
  let data;
  try {
    data = await api('GET', `${roomPath(r.name)}/receipts`);
  } catch (err) {
    console.info('parley: receipts:', err.message);
    return;
  }
  if (r !== state.room) return;
  for (const x of data?.receipts || []) raise(r, x.user, x.seq);
  renderSeen(r);
}

function raise(r, user, seq) {
  if (Number.isInteger(seq) && seq > (r.receipts.get(user) ?? 0)) r.receipts.set(user, seq);
}

/** onReceipt takes a receipt frame: in the open room, it may move "Seen". */
export function onReceipt(f) {
  const r = state.room;
  if (!r || r.name !== f.room || r.denied) return;
  raise(r, f.user, f.seq);
  if (isDirectRoom(r)) renderSeen(r);
}

/** seenUpTo is how far the other person of direct room r has read: their receipt, or their latest message shown. */
function seenUpTo(r) {
  const who = other(r);
  if (!who) return 0;
  let seq = r.receipts.get(who) ?? 0;
  for (const [s, li] of r.nodes) if (s > seq && li.dataset.user === who) seq = s;
  return seq;
}

/** renderSeen puts "Seen" under my last message of direct room r that the other has read, and nowhere else. */
export function renderSeen(r) {
  if (r !== state.room || !isDirectRoom(r)) return;
  const upto = seenUpTo(r);
  let mine = null;
  let mineSeq = 0;
  for (const [s, li] of r.nodes) {
    if (s <= upto && s > mineSeq && li.dataset.user === state.me && li.classList.contains('msg')) {
      mine = li;
      mineSeq = s;
    }
  }
  for (const x of ui.list.querySelectorAll('.msg-seen')) if (x.parentElement?.parentElement !== mine) x.remove();
  const body = mine?.querySelector('.msg-body');
  if (body && !body.querySelector('.msg-seen')) {
    body.append(el('div', { class: 'msg-seen', 'data-testid': 'message-seen', text: t('message.seen', { user: other(r) }) }));
  }
}
