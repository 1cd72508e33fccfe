// Sending: a message is pending from submit until it comes back with a seq.
// Every attempt uses the same id (the contract's idempotency key), so
// retries never duplicate a message.

import { ApiError } from './api.js';
import { t } from './i18n.js';
import { notice } from './notice.js';
import { signedOut } from './session.js';
import { pending, state } from './state.js';
import { conn } from './transport.js';
import { ui } from './ui.js';
import { messageNode, regroup, renderPending, scrollToBottom, updateEmpty } from './view.js';

const ACK_TIMEOUT = 8_000; // one send attempt waits this long for its ack
const SEND_ATTEMPTS = 3; // ...and a message gets this many attempts
const SEND_BUDGET = 30_000; // ...within this long, then it is marked failed

/**
 * newId makes a message id. randomUUID exists only in secure contexts, and
 * Parley may well be opened over plain http on a LAN address, so fall back
 * to a v4 UUID built from getRandomValues, which every context has.
 */
function newId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const show = (entry) => renderPending(entry, retry);

export function submit(text) {
  const entry = { id: newId(), room: state.room.name, text, state: 'pending', attempts: 0, firstAt: Date.now(), gen: -1, error: '', timer: 0, node: null };
  pending.set(entry.id, entry);
  attachPending(entry);
  scrollToBottom();
  transmit(entry);
}

/** attachPending shows a pending entry at the bottom of its room, if that room is open. */
export function attachPending(entry) {
  if (entry.room !== state.room?.name) {
    entry.node = null;
    return;
  }
  entry.node = messageNode(entry, entry.state);
  ui.list.append(entry.node);
  regroup(entry.node);
  show(entry);
  updateEmpty();
}

/** A message came back with a seq: its pending twin (same id, sent by me) goes away. */
export function resolvePending(m) {
  const entry = pending.get(m.id);
  if (!entry || entry.room !== m.room || m.user !== state.me) return;
  clearTimeout(entry.timer);
  pending.delete(m.id);
  if (entry.node) {
    const next = entry.node.nextElementSibling;
    entry.node.remove();
    regroup(next);
  }
}

/**
 * transmit makes one attempt to send `entry`, if the connection is live, and
 * arms the timer for the next attempt. Every attempt uses the same id: the
 * server stores a (room, id) once however often it arrives.
 */
function transmit(entry) {
  if (entry.state !== 'pending') return;
  clearTimeout(entry.timer);
  const elapsed = Date.now() - entry.firstAt;
  if (entry.attempts >= SEND_ATTEMPTS || elapsed >= SEND_BUDGET) {
    fail(entry, entry.error || t('message.noAnswer'));
    return;
  }
  if (conn.state !== 'live') {
    // Offline: conn flushes pending entries when it is live again; this
    // timer only enforces the time budget.
    entry.timer = setTimeout(() => transmit(entry), SEND_BUDGET - elapsed);
    return;
  }
  entry.attempts++;
  entry.gen = conn.gen;
  entry.timer = setTimeout(() => transmit(entry), Math.min(ACK_TIMEOUT, SEND_BUDGET - elapsed));
  conn.send(entry);
}

/** onAck: the server holds the message durably; its `message` will follow. */
export function onAck(id) {
  const entry = pending.get(id);
  if (!entry || entry.state !== 'pending') return;
  clearTimeout(entry.timer);
  entry.state = 'sent';
  show(entry);
}

/** onSendError: an attempt failed. Transient failures retry soon; others are final. */
export function onSendError(id, err) {
  const entry = pending.get(id);
  if (!entry || entry.state !== 'pending') return;
  entry.error = err.message;
  if (err.transient) {
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => transmit(entry), 1000 * entry.attempts);
  } else {
    fail(entry, err.message);
  }
}

function fail(entry, reason) {
  clearTimeout(entry.timer);
  entry.state = 'failed';
  entry.error = reason;
  show(entry);
}

function retry(entry) {
  entry.state = 'pending';
  entry.attempts = 0;
  entry.gen = -1;
  entry.firstAt = Date.now();
  entry.error = '';
  show(entry);
  transmit(entry);
}

/**
 * flushPending re-sends what was never acknowledged once a connection is
 * live: sends that went out on an earlier (dead) transport, or never went out.
 * Those in flight on this one keep waiting for their ack timer.
 */
export function flushPending() {
  for (const entry of pending.values()) if (entry.state === 'pending' && entry.gen !== conn.gen) transmit(entry);
}

/** Error frames: for one of my pending sends they fail it; otherwise a notice. */
export function onErrorFrame(f) {
  const entry = f.id && pending.get(f.id);
  const err = new ApiError(-1, f.code, f.message || f.code);
  if (entry) {
    // rate_limited / unavailable / internal may pass; retry them within the budget.
    if (['rate_limited', 'unavailable', 'internal'].includes(f.code)) onSendError(f.id, Object.assign(err, { status: 503 }));
    else fail(entry, err.message);
    return;
  }
  if (f.code === 'unauthorized') return signedOut();
  notice(f.room ? `#${f.room}: ${err.message}` : err.message, { kind: 'error' });
}
