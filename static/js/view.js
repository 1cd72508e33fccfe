// Rendering of the message pane and the connection indicator: DOM only, no
// network. Two rules hold here: user text and names are text nodes only, and
// nothing needs 'unsafe-inline' (styles go through classes or CSSOM).

import { $, el } from './dom.js';
import { lang, t } from './i18n.js';
import { state } from './state.js';
import { ui } from './ui.js';

const GROUP_WINDOW = 5 * 60_000; // consecutive messages of one user within this share a header

const timeFmt = new Intl.DateTimeFormat(lang(), { hour: '2-digit', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(lang(), { dateStyle: 'medium', timeStyle: 'medium' });

/** A stable hue per user name for the avatar. */
function hue(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 360;
}

/**
 * messageNode builds one <li>. `m` is a message of the contract, or a
 * pending entry ({id, room, text, state}) for a message not yet sequenced.
 */
export function messageNode(m, msgState) {
  const user = m.user ?? state.me;
  const date = m.ts ? new Date(m.ts) : new Date();
  const li = el(
    'li',
    {
      class: `msg${user === state.me ? ' mine' : ''}`,
      'data-testid': 'message',
      dataset: { id: m.id, user, ts: String(date.getTime()), state: msgState },
    },
    el('div', { class: 'msg-avatar', 'aria-hidden': 'true', text: ([...user][0] || '?').toUpperCase() }),
    el(
      'div',
      { class: 'msg-body' },
      el(
        'div',
        { class: 'msg-meta' },
        // dir=auto and unicode-bidi isolation (app.css): a name or text in
        // another script, or stray bidi controls in it, orders itself and
        // nothing around it.
        el('span', { class: 'msg-user', 'data-testid': 'message-user', dir: 'auto', text: user }),
        // A guest holds its name only while signed in: the mark tells it from an account.
        m.guest === true ? el('span', { class: 'guest-mark', 'data-testid': 'message-guest', title: t('message.guestTitle'), text: t('message.guest') }) : null,
        el('time', { class: 'msg-time', datetime: date.toISOString(), text: timeFmt.format(date) }),
      ),
      el('div', { class: 'msg-text', 'data-testid': 'message-text', dir: 'auto', text: m.text }),
    ),
  );
  li.style.setProperty('--hue', hue(user));
  if (m.seq) {
    li.dataset.seq = String(m.seq);
    li.title = `#${m.seq} · ${fullFmt.format(date)}`;
  }
  return li;
}

/** renderPending shows a pending entry's state (pending / sent / failed) on its node; Retry calls onRetry(entry). */
export function renderPending(entry, onRetry) {
  const li = entry.node;
  if (!li) return;
  li.dataset.state = entry.state;
  const body = $('.msg-body', li);
  $('.msg-status', li)?.remove();
  const status = el('div', { class: 'msg-status', 'data-testid': 'message-status' });
  if (entry.state === 'pending') {
    status.append(el('span', { class: 'spinner', 'aria-hidden': 'true' }), t('message.sending'));
    li.title = t('message.sending');
  } else if (entry.state === 'sent') {
    status.append(t('message.sent'));
    li.title = t('message.sentTitle');
  } else {
    status.append(
      el('span', { class: 'msg-error', 'data-testid': 'message-error', text: t('message.notSent', { error: entry.error || t('message.noAnswer') }) }),
      el('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'message-retry', text: t('message.retry'), onclick: () => onRetry(entry) }),
    );
    li.title = t('message.notSentTitle');
  }
  body.append(status);
}

/** Consecutive messages of one user, close in time, share one header. */
export function regroup(li) {
  if (!li) return;
  const prev = li.previousElementSibling;
  const continued =
    !!prev && prev.dataset.user === li.dataset.user && Math.abs(Number(li.dataset.ts) - Number(prev.dataset.ts)) < GROUP_WINDOW;
  li.classList.toggle('continued', continued);
}

/**
 * placeBySeq puts a sequenced message's node after the last one with a lower
 * seq, so pending messages stay after all sequenced ones. Walking back from the
 * end is O(1) for the usual case, a new message at the bottom.
 */
export function placeBySeq(li, seq) {
  let after = null;
  for (let n = ui.list.lastElementChild; n; n = n.previousElementSibling) {
    if (n.dataset.seq && Number(n.dataset.seq) < seq) {
      after = n;
      break;
    }
  }
  if (after) after.after(li);
  else ui.list.prepend(li);
}

/** The pane says "no messages yet", or marks the start of history once all of it is shown. */
export function updateEmpty() {
  const room = state.room;
  const loaded = room?.lastSeq != null;
  const any = ui.list.childElementCount > 0;
  ui.empty.hidden = any || !loaded;
  ui.historyStart.hidden = !any || !loaded || room.hasMore;
}

export const nearBottom = () => ui.pane.scrollHeight - ui.pane.scrollTop - ui.pane.clientHeight < 80;
export const scrollToBottom = () => {
  ui.pane.scrollTop = ui.pane.scrollHeight;
};

export function updateOlderButton() {
  const room = state.room;
  ui.loadOlder.hidden = !room?.hasMore;
  ui.loadOlder.disabled = !!room?.loadingOlder;
  ui.loadOlder.textContent = room?.loadingOlder ? t('common.loading') : t('chat.loadOlder');
}

export function setPaneStatus(text) {
  ui.paneStatus.textContent = text;
  ui.paneStatus.hidden = !text;
}

/**
 * renderConn shows the connection's state: `mode` ws or sse, and while
 * reconnecting on a timer (`waiting`), the seconds until `retryAt`.
 */
export function renderConn({ state: connState, mode, retryAt, waiting }) {
  const transport = mode === 'ws' ? 'WebSocket' : 'SSE';
  let text;
  switch (connState) {
    case 'live':
      text = t('conn.live', { transport });
      break;
    case 'connecting':
      text = t('conn.connectingVia', { transport });
      break;
    case 'reconnecting': {
      const left = Math.ceil((retryAt - Date.now()) / 1000);
      text = left > 0 && waiting ? t('conn.reconnectingIn', { transport, s: left }) : t('conn.reconnecting', { transport });
      break;
    }
    case 'offline':
      text = t('conn.offline');
      break;
    case 'signedout':
      text = t('conn.signedout');
      break;
    default:
      text = connState;
  }
  ui.conn.dataset.state = connState;
  ui.conn.dataset.transport = mode;
  ui.connText.textContent = text;
  ui.conn.title = connState === 'live' ? (transport === 'SSE' ? t('conn.title.sse') : t('conn.title.ws')) : text;
}
