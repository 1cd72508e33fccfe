// Sending: a message is pending from submit until it comes back with a seq.
// The client library (through conn) sends it and retries it, every attempt
// under the same id (the contract's idempotency key), so retries never
// duplicate a message; this module shows it pending, sent or failed, and
// sends a failed one again, same id, on Retry.

import { errorText, t } from './i18n.js';
import { clearReply, decorate, replyTarget } from './lifecycle.js';
import { notice } from './notice.js';
import { newId } from './parley-client.js';
import { signedOut } from './session.js';
import { pending, state } from './state.js';
import { conn } from './transport.js';
import { ui } from './ui.js';
import { messageNode, regroup, renderPending, scrollToBottom, updateEmpty } from './view.js';

// What one send may take, as the client library counts it.
const SEND = {
  ackTimeout: 8_000, // a WebSocket attempt waits this long for its ack
  attempts: 3, // ...and a message gets this many attempts
  budget: 30_000, // ...within this long, then it is marked failed
};
// Codes that may pass: the library retries them while the send is pending;
// one arriving after the ack is no verdict on the message.
const RETRYABLE = ['rate_limited', 'unavailable', 'internal'];

const show = (entry) => renderPending(entry, retry);

export function submit(text) {
  const entry = { id: newId(), room: state.room.name, text, reply_to: replyTarget() || undefined, state: 'pending', inflight: false, error: '', node: null };
  clearReply();
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
  decorate(state.room, entry.node, entry); // the quote of its parent
  ui.list.append(entry.node);
  regroup(entry.node);
  show(entry);
  updateEmpty();
}

/** A message came back with a seq: its pending twin (same id, sent by me) goes away. */
export function resolvePending(m) {
  const entry = pending.get(m.id);
  if (!entry || entry.room !== m.room || m.user !== state.me) return;
  pending.delete(m.id);
  if (entry.node) {
    const next = entry.node.nextElementSibling;
    entry.node.remove();
    regroup(next);
  }
}

/** transmit hands entry to the client library, which sends it until it is acknowledged or its attempts are spent. */
function transmit(entry) {
  if (entry.state !== 'pending' || entry.inflight) return;
  entry.inflight = true;
  conn.send(entry, SEND).then(
    () => {
      entry.inflight = false;
      onAck(entry);
    },
    (err) => {
      entry.inflight = false;
      onSendError(entry, err);
    },
  );
}

/** onAck: the server holds the message durably; its `message` will follow. */
function onAck(entry) {
  if (pending.get(entry.id) !== entry || entry.state !== 'pending') return;
  entry.state = 'sent';
  show(entry);
}

/** onSendError: the library gave the send up. A stopped connection is no verdict: the send waits for the next. */
function onSendError(entry, err) {
  if (pending.get(entry.id) !== entry || entry.state !== 'pending') return;
  if (err.code === 'closed') return; // flushPending sends it again once a connection is live
  if (err.code === 'unauthorized') signedOut();
  fail(entry, reason(err));
}

/** reason is what a failed message says of err. */
function reason(err) {
  if (err.code === 'network') return t('api.unreachable');
  if (err.code === 'timeout') return t('message.noAnswer');
  return errorText(err);
}

function fail(entry, why) {
  entry.state = 'failed';
  entry.error = why;
  show(entry);
}

function retry(entry) {
  entry.state = 'pending';
  entry.error = '';
  show(entry);
  transmit(entry);
}

/**
 * flushPending hands the client again what is pending but not with it: sends
 * made while the connection was stopped (a sign-out that failed, say).
 * Those the client holds it re-sends by itself on every reconnect.
 */
export function flushPending() {
  for (const entry of pending.values()) if (entry.state === 'pending' && !entry.inflight) transmit(entry);
}

/**
 * Error frames that no pending send of the client took: one about a send
 * already acknowledged fails it after all (muted or banned meanwhile);
 * otherwise a notice.
 */
export function onErrorFrame(f) {
  const entry = f.id && pending.get(f.id);
  if (entry) {
    if (!RETRYABLE.includes(f.code)) fail(entry, errorText(f));
    return;
  }
  if (f.code === 'unauthorized') return signedOut();
  const message = errorText(f);
  notice(f.room ? `#${f.room}: ${message}` : message, { kind: 'error' });
}
