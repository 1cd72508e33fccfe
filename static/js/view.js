// Rendering of the message pane and the connection indicator: DOM only, no
// network. Two rules hold here: user text and names are text nodes only, and
// nothing needs 'unsafe-inline' (styles go through classes or CSSOM).

import { $, el } from './dom.js';
import { lang, t } from './i18n.js';
import { openPersonMenu } from './members.js';
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
  if (m.kind === 'member') return eventNode(m);
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
        // Another's name opens their menu (a direct message, moderation);
        // mine is only a name.
        user === state.me
          ? el('span', { class: 'msg-user', 'data-testid': 'message-user', dir: 'auto', text: user })
          : el('button', {
              type: 'button',
              class: 'msg-user',
              'data-testid': 'message-user',
              dir: 'auto',
              'aria-haspopup': 'menu',
              text: user,
              onclick: (ev) => openPersonMenu(user, ev.currentTarget),
            }),
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

/**
 * eventNode builds the quiet line of a timeline event (kind "member": someone
 * joined, was added, removed, banned, a setting changed...), in the page's
 * language from its data; the server's own text when the action is unknown.
 */
function eventNode(m) {
  const date = m.ts ? new Date(m.ts) : new Date();
  const li = el(
    'li',
    {
      class: 'event',
      'data-testid': 'event',
      dataset: { id: m.id, ts: String(date.getTime()), action: m.data?.action || '', target: m.data?.target || '' },
    },
    el('span', { class: 'event-text', 'data-testid': 'event-text', dir: 'auto', text: eventText(m) }),
    el('time', { class: 'msg-time', datetime: date.toISOString(), text: timeFmt.format(date) }),
  );
  if (m.seq) {
    li.dataset.seq = String(m.seq);
    li.title = `#${m.seq} · ${fullFmt.format(date)}`;
  }
  return li;
}

/** until formats the end of a ban or mute for an event line. */
const untilText = (until) => fullFmt.format(new Date(until));

/** eventText is the sentence of a timeline event; every key is spelled out so the catalogue test finds it. */
export function eventText(m) {
  const d = m.data || {};
  const actor = m.user || '';
  const target = d.target || actor;
  switch (d.action) {
    case 'create':
      return t('event.create', { actor });
    case 'update': {
      const parts = [];
      if (d.title != null) parts.push(d.title ? t('event.title', { actor, title: d.title }) : t('event.titleCleared', { actor }));
      if (d.topic != null) parts.push(d.topic ? t('event.topic', { actor, topic: d.topic }) : t('event.topicCleared', { actor }));
      if (d.slow_mode_s != null) parts.push(d.slow_mode_s > 0 ? t('event.slow', { actor, s: d.slow_mode_s }) : t('event.slowOff', { actor }));
      return parts.length ? parts.join(' · ') : t('event.update', { actor });
    }
    case 'add':
      return target === actor ? t('event.join', { target }) : t('event.add', { actor, target });
    case 'remove':
      return t('event.remove', { actor, target });
    case 'leave':
      return t('event.leave', { target });
    case 'ban':
      return d.until ? t('event.banUntil', { actor, target, until: untilText(d.until) }) : t('event.ban', { actor, target });
    case 'unban':
      return t('event.unban', { actor, target });
    case 'mute':
      return t('event.mute', { actor, target, until: untilText(d.until) });
    case 'unmute':
      return t('event.unmute', { actor, target });
    case 'role':
      if (d.role === 'owner') return t('event.roleOwner', { actor, target });
      if (d.role === 'moderator') return t('event.roleModerator', { actor, target });
      return t('event.roleMember', { actor, target });
    default:
      return m.text || '';
  }
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
  // Events are lines of their own: they neither continue nor are continued.
  const continued =
    li.classList.contains('msg') && !!prev && prev.classList.contains('msg') && prev.dataset.user === li.dataset.user && Math.abs(Number(li.dataset.ts) - Number(prev.dataset.ts)) < GROUP_WINDOW;
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
