// Parley browser client: plain JavaScript, no build step, no framework.
//
// The page is rendered by the server (web/index.templ); this script finds it
// by data-page and brings it to life:
//
//   sign-in page  POST /api/session, then reload (the server sets an HttpOnly
//                 cookie, so every later request, the WebSocket and the
//                 EventSource authenticate by cookie alone).
//   chat page     rooms (GET /api/rooms, paged), history (GET .../messages), the live
//                 connection (WebSocket /ws, or SSE + POST as a fallback),
//                 pending sends with retries under the same id.
//
// The wire contract is shared/PROTOCOL.md. Two rules hold throughout:
//   - user text and user names reach the DOM only as text nodes (textContent,
//     Node.append(string)), never as HTML;
//   - messages of a room are shown in seq order, once each, with no gap: a
//     jump in seq is filled from history before the later message is shown.
//   - nothing here needs 'unsafe-inline' or 'unsafe-eval': the server's CSP
//     (handlers/headers.go) refuses inline script, style attributes, eval
//     and javascript: URLs, and the browser test fails on any violation.
'use strict';

/* ------------------------------------------------------------------------ */
/* Constants                                                                 */
/* ------------------------------------------------------------------------ */

const ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const ROOM_RULE = 'A room name is 1–64 lowercase letters, digits, “-” or “_”, and starts with a letter or digit.';
const DEFAULT_ROOM = 'general';
const PAGE_SIZE = 50; // history page when opening a room or scrolling up
const GAP_PAGE = 200; // history page when filling a gap (the contract's max)
const MAX_TEXT = 4000; // code points
const PING_EVERY = 25_000;
const PONG_TIMEOUT = 10_000; // no frame at all this long after a ping: the socket is dead
const ROOMS_EVERY = 10_000;
const ROOMS_PAGE = 100; // rooms per GET /api/rooms page (the server allows 1-200)
const BACKOFF_BASE = 500;
const BACKOFF_CAP = 15_000;
const ACK_TIMEOUT = 8_000; // one send attempt waits this long for its ack
const SEND_ATTEMPTS = 3; // ...and a message gets this many attempts
const SEND_BUDGET = 30_000; // ...within this long, then it is marked failed
const GROUP_WINDOW = 5 * 60_000; // consecutive messages of one user within this share a header
const NOTICE_MS = 6_000;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

const $ = (sel, root = document) => root.querySelector(sel);
const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

/**
 * el builds an element. Children that are strings become text nodes
 * (Node.append never parses HTML), so user text is safe to pass here.
 * props: class, text (textContent), dataset, on<event>, or any attribute
 * but `style`: the page runs under a CSP without 'unsafe-inline', which
 * refuses style attributes (CSSOM writes such as el.style.setProperty are
 * allowed and are the way to style from here).
 */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'style') throw new Error('el: no style attributes (CSP); use a class or el.style');
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

/**
 * newId makes a message id (the contract's idempotency key). randomUUID exists
 * only in secure contexts, and Parley may well be opened over plain http on a
 * LAN address, so fall back to a v4 UUID built from getRandomValues, which
 * every context has.
 */
function newId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const codePoints = (s) => [...s].length;

/** An error answer of /api/*: {"error":{"code","message"}}; status 0 = no answer at all. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  /** Worth trying again later: no answer, rate limited, or the server's fault. */
  get transient() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

/** api calls a JSON endpoint and returns its parsed body (null for 204). */
async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (typeof AbortSignal.timeout === 'function') init.signal = AbortSignal.timeout(15_000);
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'The server could not be reached.');
  }
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch {
      /* not JSON: fall through with data = null */
    }
  }
  if (!res.ok) {
    const e = data && data.error;
    throw new ApiError(res.status, e?.code || `http_${res.status}`, e?.message || `${res.status} ${res.statusText}`.trim());
  }
  return data;
}

const roomPath = (room) => `/api/rooms/${encodeURIComponent(room)}`;

/* ------------------------------------------------------------------------ */
/* Sign-in page                                                              */
/* ------------------------------------------------------------------------ */

function initSignIn() {
  const form = byTestId('signin-form');
  if (!form) return; // guest sign-in is off: the page only explains that
  const input = byTestId('signin-name');
  const button = byTestId('signin-button');
  const error = byTestId('signin-error');

  const showError = (msg) => {
    error.textContent = msg;
    error.hidden = !msg;
    input.setAttribute('aria-invalid', msg ? 'true' : 'false');
  };
  input.addEventListener('input', () => showError(''));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = input.value.trim();
    if (!name) {
      showError('Please enter a name.');
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      // The answer also carries the token, but the HttpOnly cookie the server
      // sets is what this page uses from now on.
      await api('POST', '/api/session', { name });
      location.reload(); // keeps the #room=... hash
    } catch (err) {
      showError(err.message); // the server's own words, e.g. why a name is refused
      button.disabled = false;
      input.focus();
    }
  });
}

/* ------------------------------------------------------------------------ */
/* Chat page                                                                 */
/* ------------------------------------------------------------------------ */

function initApp() {
  const me = document.body.dataset.user;
  const forceSSE = new URLSearchParams(location.search).get('transport') === 'sse';

  const ui = {
    conn: byTestId('conn-state'),
    connText: $('.conn-text'),
    signout: byTestId('signout-button'),
    roomsToggle: byTestId('rooms-toggle'),
    scrim: byTestId('scrim'),
    roomForm: byTestId('room-form'),
    roomInput: byTestId('room-input'),
    roomError: byTestId('room-error'),
    roomList: byTestId('room-list'),
    roomsMore: byTestId('rooms-more'),
    roomName: $('.room-title .room-name'),
    pane: byTestId('message-pane'),
    loadOlder: byTestId('load-older'),
    paneStatus: byTestId('pane-status'),
    list: byTestId('message-list'),
    empty: byTestId('empty'),
    historyStart: byTestId('history-start'),
    startRoom: $('.history-start .start-room'),
    composer: byTestId('composer'),
    input: byTestId('message-input'),
    notice: byTestId('notice'),
  };

  /* ---------------------------------------------------------------------- */
  /* State                                                                   */
  /* ---------------------------------------------------------------------- */

  /**
   * The open room. Only one room is open at a time; switching rooms replaces
   * this object, and every async step checks `r === room` before touching the
   * page, so a late answer for a room already left is dropped.
   */
  let room = null;

  function newRoom(name) {
    return {
      name,
      lastSeq: null, // highest seq shown with nothing missing below it; null until history is loaded
      oldestSeq: null, // lowest seq shown, for ?before=
      hasMore: false, // history has older messages than oldestSeq
      loadingOlder: false,
      nodes: new Map(), // seq -> <li>, to drop duplicates
      history: null, // promise of the first history page (memoized, reset on failure)
      queue: Promise.resolve(), // incoming messages are applied one at a time, in arrival order
      broken: false, // a gap could not be filled: drop live messages until the next (re)join replays them
    };
  }

  /** Highest seq seen per room this session, for the unread marks in the room list. */
  const seenSeq = new Map();

  /** Messages sent but not yet seen come back with a seq: id -> entry. */
  const pending = new Map();

  /* ---------------------------------------------------------------------- */
  /* Notices                                                                 */
  /* ---------------------------------------------------------------------- */

  let noticeTimer = 0;
  function notice(text, { kind = 'info', sticky = false, action = null } = {}) {
    clearTimeout(noticeTimer);
    ui.notice.replaceChildren(el('span', { class: 'notice-text', text }));
    if (action) ui.notice.append(el('button', { type: 'button', class: 'btn btn-small', text: action.label, onclick: action.run }));
    ui.notice.append(el('button', { type: 'button', class: 'notice-close', 'aria-label': 'Dismiss', text: '×', onclick: hideNotice }));
    ui.notice.dataset.kind = kind;
    ui.notice.hidden = false;
    if (!sticky) noticeTimer = setTimeout(hideNotice, NOTICE_MS);
  }
  function hideNotice() {
    ui.notice.hidden = true;
  }

  /* ---------------------------------------------------------------------- */
  /* Rendering messages                                                      */
  /* ---------------------------------------------------------------------- */

  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

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
  function messageNode(m, state) {
    const user = m.user ?? me;
    const date = m.ts ? new Date(m.ts) : new Date();
    const li = el(
      'li',
      {
        class: `msg${user === me ? ' mine' : ''}`,
        'data-testid': 'message',
        dataset: { id: m.id, user, ts: String(date.getTime()), state },
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

  /** setPendingState shows a pending entry's state (pending / sent / failed) on its node. */
  function renderPending(entry) {
    const li = entry.node;
    if (!li) return;
    li.dataset.state = entry.state;
    const body = $('.msg-body', li);
    $('.msg-status', li)?.remove();
    const status = el('div', { class: 'msg-status', 'data-testid': 'message-status' });
    if (entry.state === 'pending') {
      status.append(el('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Sending…');
      li.title = 'Sending…';
    } else if (entry.state === 'sent') {
      status.append('Sent');
      li.title = 'Accepted by the server, waiting for its sequence number';
    } else {
      status.append(
        el('span', { class: 'msg-error', 'data-testid': 'message-error', text: `Not sent: ${entry.error || 'no answer from the server'}` }),
        el('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'message-retry', text: 'Retry', onclick: () => retry(entry) }),
      );
      li.title = 'Not sent';
    }
    body.append(status);
  }

  /** Consecutive messages of one user, close in time, share one header. */
  function regroup(li) {
    if (!li) return;
    const prev = li.previousElementSibling;
    const continued =
      !!prev && prev.dataset.user === li.dataset.user && Math.abs(Number(li.dataset.ts) - Number(prev.dataset.ts)) < GROUP_WINDOW;
    li.classList.toggle('continued', continued);
  }

  /** The pane says "no messages yet", or marks the start of history once all of it is shown. */
  function updateEmpty() {
    const loaded = room?.lastSeq != null;
    const any = ui.list.childElementCount > 0;
    ui.empty.hidden = any || !loaded;
    ui.historyStart.hidden = !any || !loaded || room.hasMore;
  }

  const nearBottom = () => ui.pane.scrollHeight - ui.pane.scrollTop - ui.pane.clientHeight < 80;
  const scrollToBottom = () => {
    ui.pane.scrollTop = ui.pane.scrollHeight;
  };

  /**
   * insertSequenced places a sequenced message by seq. Pending messages stay
   * after all sequenced ones. Walking back from the end is O(1) for the usual
   * case, a new message at the bottom.
   */
  function insertSequenced(r, m) {
    if (r.nodes.has(m.seq)) return false;
    const li = messageNode(m, 'delivered');
    let after = null;
    for (let n = ui.list.lastElementChild; n; n = n.previousElementSibling) {
      if (n.dataset.seq && Number(n.dataset.seq) < m.seq) {
        after = n;
        break;
      }
    }
    if (after) after.after(li);
    else ui.list.prepend(li);
    r.nodes.set(m.seq, li);
    if (r.oldestSeq === null || m.seq < r.oldestSeq) r.oldestSeq = m.seq;
    resolvePending(m);
    regroup(li);
    regroup(li.nextElementSibling);
    return true;
  }

  /** A message came back with a seq: its pending twin (same id, sent by me) goes away. */
  function resolvePending(m) {
    const entry = pending.get(m.id);
    if (!entry || entry.room !== m.room || m.user !== me) return;
    clearTimeout(entry.timer);
    pending.delete(m.id);
    if (entry.node) {
      const next = entry.node.nextElementSibling;
      entry.node.remove();
      regroup(next);
    }
  }

  /** showLive adds the next message of the room at the bottom (seq = lastSeq + 1). */
  function showLive(r, m) {
    const stick = nearBottom() || m.user === me;
    insertSequenced(r, m);
    r.lastSeq = m.seq;
    seenSeq.set(r.name, Math.max(seenSeq.get(r.name) || 0, m.seq));
    updateEmpty();
    if (stick) scrollToBottom();
  }

  /* ---------------------------------------------------------------------- */
  /* History                                                                 */
  /* ---------------------------------------------------------------------- */

  /** ensureHistory loads the latest page once per room visit; the live connection joins after it. */
  function ensureHistory(r) {
    r.history ??= loadLatest(r).catch((err) => {
      r.history = null; // try again on the next connect
      if (r === room) setPaneStatus(`Could not load messages (${err.message}); retrying…`);
      throw err;
    });
    return r.history;
  }

  async function loadLatest(r) {
    setPaneStatus('Loading messages…');
    const page = await api('GET', `${roomPath(r.name)}/messages?limit=${PAGE_SIZE}`);
    if (r !== room) return;
    setPaneStatus('');
    for (const m of page.messages) insertSequenced(r, m);
    const last = page.messages.at(-1);
    r.lastSeq = Math.max(r.lastSeq ?? 0, last ? last.seq : 0);
    r.hasMore = page.has_more;
    seenSeq.set(r.name, Math.max(seenSeq.get(r.name) || 0, r.lastSeq));
    updateOlderButton();
    updateEmpty();
    scrollToBottom();
    renderRoomList();
    fillViewport(r);
  }

  /** Keep loading older pages while the pane has no scroll bar to pull on. */
  async function fillViewport(r) {
    for (let i = 0; i < 5 && r === room && r.hasMore && ui.pane.scrollHeight <= ui.pane.clientHeight; i++) {
      if (!(await loadOlder())) break;
    }
  }

  /** loadOlder prepends the page just before the oldest shown message, keeping what the reader sees in place. */
  async function loadOlder() {
    const r = room;
    if (!r || !r.hasMore || r.loadingOlder || r.oldestSeq === null) return false;
    r.loadingOlder = true;
    updateOlderButton();
    try {
      const page = await api('GET', `${roomPath(r.name)}/messages?limit=${PAGE_SIZE}&before=${r.oldestSeq}`);
      if (r !== room) return false;
      const height = ui.pane.scrollHeight;
      const top = ui.pane.scrollTop;
      for (const m of page.messages) insertSequenced(r, m);
      r.hasMore = page.has_more && page.messages.length > 0;
      updateEmpty();
      ui.pane.scrollTop = top + (ui.pane.scrollHeight - height);
      return true;
    } catch (err) {
      notice(`Could not load older messages: ${err.message}`, { kind: 'error' });
      return false;
    } finally {
      r.loadingOlder = false;
      if (r === room) updateOlderButton();
    }
  }

  function updateOlderButton() {
    ui.loadOlder.hidden = !room?.hasMore;
    ui.loadOlder.disabled = !!room?.loadingOlder;
    ui.loadOlder.textContent = room?.loadingOlder ? 'Loading…' : 'Load older messages';
  }

  function setPaneStatus(text) {
    ui.paneStatus.textContent = text;
    ui.paneStatus.hidden = !text;
  }

  /**
   * fillGap fetches, from history, the messages between lastSeq and `upto`
   * and shows them. False when it could not (network, or history does not
   * have them yet); the caller then reconnects, and the join's replay brings
   * them.
   */
  async function fillGap(r, upto) {
    let failures = 0;
    for (let pages = 0; r === room && r.lastSeq < upto && pages < 50; ) {
      let page;
      try {
        page = await api('GET', `${roomPath(r.name)}/messages?after=${r.lastSeq}&limit=${GAP_PAGE}`);
      } catch (err) {
        if (!err.transient || ++failures > 2) return false;
        await sleep(1000 * failures);
        continue;
      }
      if (r !== room) return false;
      pages++;
      let progressed = false;
      for (const m of page.messages) {
        if (m.seq === r.lastSeq + 1) {
          showLive(r, m);
          progressed = true;
        }
      }
      if (!progressed || (!page.has_more && r.lastSeq < upto)) return r.lastSeq >= upto;
    }
    return r === room && r.lastSeq >= upto;
  }

  /* ---------------------------------------------------------------------- */
  /* Incoming messages: one ordered pipeline per room                        */
  /* ---------------------------------------------------------------------- */

  /** onIncoming takes a message from either transport. */
  function onIncoming(m) {
    const r = room;
    if (!r || !m || m.room !== r.name || !Number.isInteger(m.seq)) return;
    r.queue = r.queue.then(() => applyIncoming(r, m)).catch((err) => console.error('parley: applying message', err));
  }

  async function applyIncoming(r, m) {
    if (r !== room || r.broken || r.lastSeq === null) return;
    if (m.seq <= r.lastSeq) return; // already shown (replay overlap, or history got there first)
    if (m.seq > r.lastSeq + 1) {
      // Something was missed: show it first, from history, so order holds.
      const ok = await fillGap(r, m.seq - 1);
      if (r !== room) return;
      if (!ok) {
        r.broken = true;
        conn.restart('a gap in the message stream could not be filled');
        return;
      }
      if (m.seq <= r.lastSeq) return;
    }
    showLive(r, m);
  }

  /** synced runs when the connection is (re)joined to room r: its replay follows, so stop dropping. */
  function synced(r) {
    r.queue = r.queue.then(() => {
      r.broken = false;
    });
  }

  /* ---------------------------------------------------------------------- */
  /* Sending                                                                 */
  /* ---------------------------------------------------------------------- */

  function submit(text) {
    const entry = { id: newId(), room: room.name, text, state: 'pending', attempts: 0, firstAt: Date.now(), gen: -1, error: '', timer: 0, node: null };
    pending.set(entry.id, entry);
    attachPending(entry);
    scrollToBottom();
    transmit(entry);
  }

  /** attachPending shows a pending entry at the bottom of its room, if that room is open. */
  function attachPending(entry) {
    if (entry.room !== room?.name) {
      entry.node = null;
      return;
    }
    entry.node = messageNode(entry, entry.state);
    ui.list.append(entry.node);
    regroup(entry.node);
    renderPending(entry);
    updateEmpty();
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
      fail(entry, entry.error || 'no answer from the server');
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
  function onAck(id) {
    const entry = pending.get(id);
    if (!entry || entry.state !== 'pending') return;
    clearTimeout(entry.timer);
    entry.state = 'sent';
    renderPending(entry);
  }

  /** onSendError: an attempt failed. Transient failures retry soon; others are final. */
  function onSendError(id, err) {
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
    renderPending(entry);
  }

  function retry(entry) {
    entry.state = 'pending';
    entry.attempts = 0;
    entry.gen = -1;
    entry.firstAt = Date.now();
    entry.error = '';
    renderPending(entry);
    transmit(entry);
  }

  /**
   * flushPending re-sends what was never acknowledged once a connection is
   * live: sends that went out on an earlier (dead) transport, or never went out.
   * Those in flight on this one keep waiting for their ack timer.
   */
  function flushPending() {
    for (const entry of pending.values()) if (entry.state === 'pending' && entry.gen !== conn.gen) transmit(entry);
  }

  /* ---------------------------------------------------------------------- */
  /* Connection: WebSocket, or SSE + POST                                    */
  /* ---------------------------------------------------------------------- */

  /**
   * conn owns the live transport. States: connecting, live, reconnecting
   * (with a countdown when we wait; without one while EventSource retries on
   * its own), offline (the browser says there is no network), signedout.
   *
   * WebSocket is the default. If it fails before it ever opened while the
   * server does answer plain HTTP, something on the way (a proxy) breaks
   * WebSocket, and the client switches to SSE + POST for the rest of the
   * visit. ?transport=sse forces SSE from the start.
   */
  const conn = {
    mode: forceSSE ? 'sse' : 'ws',
    state: 'connecting',
    attempt: 0, // consecutive failures, for the backoff
    gen: 0, // counts transports opened; a pending send remembers the one it went out on
    retryAt: 0,
    wsOpenedOnce: false,
    ws: null,
    es: null,
    posts: Promise.resolve(), // the chain of SSE-mode POSTs, to keep them in order
    sseAttempt: null, // the SSE connect in progress (it awaits history first)
    timers: { retry: 0, ping: 0, pong: 0, tick: 0 },
    stopped: true, // until start(): opening the first room must not connect yet

    start() {
      this.stopped = false;
      this.connect();
    },

    stop() {
      this.stopped = true;
      this.teardown();
    },

    connect() {
      this.teardown();
      if (this.stopped || !room) return;
      if (!navigator.onLine) {
        this.setState('offline');
        return;
      }
      this.gen++;
      this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting');
      if (this.mode === 'ws') this.openWS();
      else this.openSSE();
    },

    /** teardown drops the current transport and its timers without firing its handlers. */
    teardown() {
      clearTimeout(this.timers.retry);
      clearInterval(this.timers.ping);
      clearTimeout(this.timers.pong);
      clearInterval(this.timers.tick);
      if (this.ws) {
        const ws = this.ws;
        this.ws = null;
        ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
        if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000, 'client reconnecting');
      }
      if (this.es) {
        this.es.onopen = this.es.onmessage = this.es.onerror = null;
        this.es.close();
        this.es = null;
      }
    },

    /** restart reconnects now (after backoff if failures pile up); the new join replays from lastSeq. */
    restart(reason) {
      console.warn('parley: reconnecting:', reason);
      this.scheduleReconnect();
    },

    /** scheduleReconnect waits a full-jitter exponential backoff, then connects. */
    scheduleReconnect({ prompt = false } = {}) {
      this.teardown();
      if (this.stopped) return;
      if (!navigator.onLine) {
        this.setState('offline');
        return;
      }
      const ceiling = Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** this.attempt);
      const delay = prompt ? Math.random() * 500 : Math.random() * ceiling;
      this.attempt++;
      this.retryAt = Date.now() + delay;
      this.timers.retry = setTimeout(() => this.connect(), delay);
      this.timers.tick = setInterval(() => this.render(), 1000);
      this.setState('reconnecting');
      // Failing again and again may mean the session is gone rather than the network.
      if (this.attempt >= 3) checkSession();
    },

    setState(state) {
      this.state = state;
      this.render();
    },

    render() {
      const transport = this.mode === 'ws' ? 'WebSocket' : 'SSE';
      let text;
      switch (this.state) {
        case 'live':
          text = `${transport} · live`;
          break;
        case 'connecting':
          text = `${transport} · connecting…`;
          break;
        case 'reconnecting': {
          const left = Math.ceil((this.retryAt - Date.now()) / 1000);
          text = left > 0 && this.timers.retry ? `${transport} · reconnecting in ${left}s` : `${transport} · reconnecting…`;
          break;
        }
        case 'offline':
          text = 'Offline';
          break;
        case 'signedout':
          text = 'Signed out';
          break;
        default:
          text = this.state;
      }
      ui.conn.dataset.state = this.state;
      ui.conn.dataset.transport = this.mode;
      ui.connText.textContent = text;
      ui.conn.title =
        this.state === 'live' ? `Connected over ${transport === 'SSE' ? 'Server-Sent Events + POST' : 'WebSocket'}` : text;
    },

    /** live: messages of the open room flow; re-send what is unacknowledged. */
    becameLive(r) {
      this.attempt = 0;
      clearInterval(this.timers.tick);
      this.setState('live');
      synced(r);
      flushPending();
      refreshRooms();
    },

    send(entry) {
      if (this.mode === 'ws') {
        this.frame({ type: 'send', room: entry.room, id: entry.id, text: entry.text });
      } else {
        // POSTs go one at a time: concurrent requests would reach the server
        // in any order and be sequenced so, shuffling what the user typed in
        // order. (Over WebSocket the frames keep their order by themselves.)
        this.posts = this.posts.then(() =>
          api('POST', `${roomPath(entry.room)}/messages`, { id: entry.id, text: entry.text }).then(
            () => onAck(entry.id), // 202: durably accepted
            (err) => onSendError(entry.id, err),
          ),
        );
      }
    },

    /** roomChanged moves the live connection from room `from` to the open room. */
    roomChanged(from) {
      if (this.stopped || !(this.state === 'connecting' || this.state === 'live')) {
        return; // reconnecting / offline / signed out: the next connect picks up the new room
      }
      if (this.mode === 'sse') {
        this.connect(); // one EventSource per room
      } else if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        if (from) this.frame({ type: 'leave', room: from });
        this.setState('connecting');
        this.joinWS(this.ws);
      } else if (!this.ws) {
        this.connect();
      }
      // A socket still opening joins whatever room is open when it opens.
    },

    /* ---- WebSocket ---- */

    openWS() {
      const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
      let ws;
      try {
        ws = new WebSocket(url);
      } catch (err) {
        console.error('parley: websocket', err);
        this.wsFailedBeforeOpen();
        return;
      }
      this.ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        this.wsOpenedOnce = true;
        this.timers.ping = setInterval(() => this.ping(), PING_EVERY);
        this.joinWS(ws);
      };
      ws.onmessage = (ev) => this.onFrame(ev.data);
      ws.onerror = () => {
        /* a close event always follows; handled there */
      };
      ws.onclose = (ev) => {
        if (this.ws !== ws) return;
        this.ws = null;
        if (!opened && !this.wsOpenedOnce && !forceSSE) {
          this.wsFailedBeforeOpen();
          return;
        }
        if (ev.code === 1008 || ev.code === 1009) notice(`Connection closed by the server: ${ev.reason || `code ${ev.code}`}`, { kind: 'error' });
        // 1012: the server is restarting; another instance (or this one, soon)
        // takes over, so come back right away and resume with `after`.
        if (ev.code === 1012) this.attempt = 0;
        this.scheduleReconnect({ prompt: ev.code === 1012 });
      };
    },

    /**
     * wsFailedBeforeOpen decides between "the server is down" (keep trying
     * WebSocket with backoff) and "WebSocket is blocked on the way" (the
     * server answers HTTP: switch to SSE + POST now).
     */
    async wsFailedBeforeOpen() {
      this.teardown();
      this.setState('reconnecting');
      try {
        await api('GET', '/api/rooms?limit=1');
      } catch (err) {
        if (err.status === 401) signedOut();
        else this.scheduleReconnect();
        return;
      }
      if (this.stopped) return;
      this.mode = 'sse';
      notice('WebSocket is not available here; using Server-Sent Events instead.');
      this.connect();
    },

    /** joinWS joins the open room after its history is loaded, asking for everything after the last seq shown. */
    async joinWS(ws) {
      const r = room;
      try {
        await ensureHistory(r);
      } catch (err) {
        if (this.ws !== ws) return;
        if (err.status === 401) return signedOut();
        notice(`Could not load messages: ${err.message}`, { kind: 'error' });
        this.scheduleReconnect();
        return;
      }
      if (this.ws !== ws || r !== room) return; // superseded meanwhile
      this.frame({ type: 'join', room: r.name, after: r.lastSeq });
    },

    frame(obj) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
    },

    ping() {
      this.frame({ type: 'ping' });
      clearTimeout(this.timers.pong);
      // Any frame clears this (see onFrame). A socket that stays silent is
      // half-open: drop it rather than wait for TCP to notice.
      this.timers.pong = setTimeout(() => this.restart('no answer to ping'), PONG_TIMEOUT);
    },

    onFrame(data) {
      clearTimeout(this.timers.pong);
      let f;
      try {
        f = JSON.parse(data);
      } catch {
        console.warn('parley: frame is not JSON', data);
        return;
      }
      switch (f.type) {
        case 'message':
          onIncoming(f);
          break;
        case 'joined':
          if (room && f.room === room.name) this.becameLive(room);
          break;
        case 'ack':
          onAck(f.id);
          break;
        case 'error':
          onErrorFrame(f);
          break;
        case 'left':
        case 'pong':
          break;
        default:
        // Unknown frame types are extensions of the contract: ignore them.
      }
    },

    /* ---- Server-Sent Events ---- */

    async openSSE() {
      const r = room;
      const marker = {}; // identifies this attempt across the await
      this.sseAttempt = marker;
      try {
        await ensureHistory(r);
      } catch (err) {
        if (this.sseAttempt !== marker) return;
        if (err.status === 401) return signedOut();
        notice(`Could not load messages: ${err.message}`, { kind: 'error' });
        this.scheduleReconnect();
        return;
      }
      if (this.sseAttempt !== marker || r !== room || this.stopped) return;
      // EventSource reconnects by itself and then sends Last-Event-ID, which
      // the server prefers to ?after=; we only build a new one when it gives
      // up (readyState CLOSED) or the room changes.
      const es = new EventSource(`${roomPath(r.name)}/events?after=${r.lastSeq}`);
      this.es = es;
      es.onopen = () => this.becameLive(r);
      es.onmessage = (ev) => {
        try {
          onIncoming(JSON.parse(ev.data));
        } catch {
          console.warn('parley: event is not JSON', ev.data);
        }
      };
      es.onerror = () => {
        if (this.es !== es) return;
        if (es.readyState === EventSource.CLOSED) this.scheduleReconnect();
        else this.setState('reconnecting'); // the browser retries on its own
      };
    },
  };

  /** Error frames: for one of my pending sends they fail it; otherwise a notice. */
  function onErrorFrame(f) {
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

  async function checkSession() {
    try {
      await api('GET', '/api/rooms?limit=1');
    } catch (err) {
      if (err.status === 401) signedOut();
    }
  }

  function signedOut() {
    conn.stop();
    conn.setState('signedout');
    notice('Your session has ended.', { kind: 'error', sticky: true, action: { label: 'Sign in again', run: () => location.reload() } });
  }

  window.addEventListener('offline', () => {
    conn.teardown();
    conn.setState('offline');
  });
  window.addEventListener('online', () => {
    conn.attempt = 0;
    if (!conn.stopped) conn.connect();
  });

  /* ---------------------------------------------------------------------- */
  /* Rooms                                                                   */
  /* ---------------------------------------------------------------------- */

  /**
   * Rooms as the server listed them: name -> last_seq. GET /api/rooms is
   * paged by name and lists only rooms that have had a message. The periodic
   * refresh reads the first page; "More rooms…" reads the next one from
   * moreCursor. Pages are merged (rooms are never removed), so what "More"
   * brought stays listed, with the last_seq of when it was read.
   */
  const knownRooms = new Map();
  let moreCursor = null; // next_cursor of the last page read; null: nothing more
  let morePages = false; // "More" was used: its cursor, not the first page's, is next
  let loadingMore = false;

  function mergeRooms(data) {
    for (const x of data.rooms || []) knownRooms.set(x.room, x.last_seq);
  }

  async function refreshRooms() {
    try {
      const data = await api('GET', `/api/rooms?limit=${ROOMS_PAGE}`);
      mergeRooms(data);
      if (!morePages) moreCursor = data.next_cursor ?? null;
      renderRoomList();
    } catch (err) {
      if (err.status === 401) signedOut();
      // Otherwise keep the last list; the connection indicator tells the story.
    }
  }

  async function loadMoreRooms() {
    if (loadingMore || !moreCursor) return;
    loadingMore = true;
    renderRoomList();
    try {
      const data = await api('GET', `/api/rooms?limit=${ROOMS_PAGE}&cursor=${encodeURIComponent(moreCursor)}`);
      mergeRooms(data);
      morePages = true;
      moreCursor = data.next_cursor ?? null;
    } catch (err) {
      if (err.status === 401) signedOut();
      else notice(`Could not load more rooms: ${err.message}`, { kind: 'error' });
    } finally {
      loadingMore = false;
      renderRoomList();
    }
  }

  /** renderRoomList updates the list in place (keyed by room), so focus and hover survive refreshes. */
  function renderRoomList() {
    const names = new Set(knownRooms.keys());
    // The open room is always shown: the server lists a room only once it
    // has a message, and it may be on a page not read yet.
    if (room) names.add(room.name);
    const sorted = [...names].sort();
    const existing = new Map([...ui.roomList.children].map((li) => [li.dataset.room, li]));
    sorted.forEach((name, i) => {
      let li = existing.get(name);
      if (!li) {
        li = el(
          'li',
          { class: 'room', 'data-testid': 'room-item', dataset: { room: name } },
          el(
            'a',
            { href: `#room=${encodeURIComponent(name)}` },
            el('span', { class: 'hash', 'aria-hidden': 'true', text: '#' }),
            el('span', { class: 'room-label', text: name }),
            el('span', { class: 'room-badge', 'aria-label': 'new messages', hidden: true }),
          ),
        );
      }
      existing.delete(name);
      if (ui.roomList.children[i] !== li) ui.roomList.insertBefore(li, ui.roomList.children[i] || null);
      const current = room?.name === name;
      li.classList.toggle('current', current);
      const a = $('a', li);
      if (current) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
      const last = knownRooms.get(name) || 0;
      const seen = seenSeq.get(name);
      $('.room-badge', li).hidden = current || seen === undefined || last <= seen;
    });
    for (const li of existing.values()) li.remove();
    ui.roomsMore.hidden = !moreCursor;
    ui.roomsMore.disabled = loadingMore;
    ui.roomsMore.textContent = loadingMore ? 'Loading…' : 'More rooms…';
  }

  /* ---------------------------------------------------------------------- */
  /* Navigation: #room=<name>                                                */
  /* ---------------------------------------------------------------------- */

  function roomFromHash() {
    const name = new URLSearchParams(location.hash.slice(1)).get('room');
    if (name && ROOM_RE.test(name)) return name;
    if (name) notice(`“${name}” is not a room name. ${ROOM_RULE}`, { kind: 'error' });
    return DEFAULT_ROOM;
  }

  function openRoom(name) {
    if (room?.name === name) return;
    const from = room?.name;
    room = newRoom(name);
    ui.list.replaceChildren();
    ui.roomName.textContent = name;
    ui.startRoom.textContent = name;
    ui.input.placeholder = `Message #${name}`;
    document.title = `#${name} · Parley`;
    updateOlderButton();
    updateEmpty();
    // Sends to this room still waiting for their seq are shown again.
    for (const entry of pending.values()) if (entry.room === name) attachPending(entry);
    renderRoomList();
    closeSidebar();
    conn.roomChanged(from);
  }

  window.addEventListener('hashchange', () => openRoom(roomFromHash()));

  /* ---------------------------------------------------------------------- */
  /* Controls                                                                */
  /* ---------------------------------------------------------------------- */

  ui.roomForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = ui.roomInput.value.trim();
    const ok = ROOM_RE.test(name);
    ui.roomError.textContent = ok ? '' : name ? `“${name}” is not a valid room name. ${ROOM_RULE}` : 'Type a room name to create or join it.';
    ui.roomError.hidden = ok;
    ui.roomInput.setAttribute('aria-invalid', ok ? 'false' : 'true');
    if (!ok) return;
    ui.roomInput.value = '';
    location.hash = `room=${name}`; // hashchange opens it; a new room comes into being on join
  });
  ui.roomInput.addEventListener('input', () => {
    ui.roomError.hidden = true;
    ui.roomInput.removeAttribute('aria-invalid');
  });

  ui.composer.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = ui.input.value;
    if (!text.trim()) return;
    const n = codePoints(text);
    if (n > MAX_TEXT) {
      notice(`That message is ${n} characters long; the limit is ${MAX_TEXT}.`, { kind: 'error' });
      return;
    }
    submit(text);
    ui.input.value = '';
    autosize();
    ui.input.focus();
  });
  // Enter sends, Shift+Enter is a new line; not while an IME is composing.
  ui.input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      ui.composer.requestSubmit();
    }
  });
  function autosize() {
    ui.input.style.height = 'auto';
    ui.input.style.height = `${Math.min(ui.input.scrollHeight, 200)}px`;
  }
  ui.input.addEventListener('input', autosize);

  ui.roomsMore.addEventListener('click', () => loadMoreRooms());
  ui.loadOlder.addEventListener('click', () => loadOlder());
  ui.pane.addEventListener('scroll', () => {
    if (ui.pane.scrollTop < 60) loadOlder();
  });

  ui.signout.addEventListener('click', async () => {
    ui.signout.disabled = true;
    try {
      await api('DELETE', '/api/session');
    } catch (err) {
      notice(`Could not sign out: ${err.message}`, { kind: 'error' });
      ui.signout.disabled = false;
      return;
    }
    conn.stop();
    location.reload();
  });

  // Narrow screens: the room list is a drawer.
  function closeSidebar() {
    document.body.classList.remove('rooms-open');
    ui.roomsToggle.setAttribute('aria-expanded', 'false');
    ui.scrim.hidden = true;
  }
  ui.roomsToggle.addEventListener('click', () => {
    const open = !document.body.classList.contains('rooms-open');
    document.body.classList.toggle('rooms-open', open);
    ui.roomsToggle.setAttribute('aria-expanded', String(open));
    ui.scrim.hidden = !open;
  });
  ui.scrim.addEventListener('click', closeSidebar);

  /* ---------------------------------------------------------------------- */
  /* Start                                                                   */
  /* ---------------------------------------------------------------------- */

  const first = roomFromHash();
  history.replaceState(null, '', `${location.pathname}${location.search}#room=${first}`);
  conn.render();
  openRoom(first); // connects (history first, then join)
  conn.start();
  refreshRooms();
  setInterval(refreshRooms, ROOMS_EVERY);
}

/* ------------------------------------------------------------------------ */

if (document.body.dataset.page === 'signin') initSignIn();
else if (document.body.dataset.page === 'app') initApp();
