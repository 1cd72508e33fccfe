// The live connection: WebSocket /ws, or SSE + POST as a fallback, resuming
// from the open room's last seq on every (re)connect.
//
// conn knows the wire (shared/PROTOCOL.md) and the open room, nothing of
// the page beyond the connection indicator: what arrives goes to the
// handlers in conn.on, which main.js sets before start(). The URLs of the
// WebSocket and of a room's SSE stream come from the client library
// (parley-client.js), so the UI and programs address the server alike.

import { api, roomPath } from './api.js';
import { t } from './i18n.js';
import { notice } from './notice.js';
import { eventsURL, wsURL } from './parley-client.js';
import { state } from './state.js';
import { renderConn } from './view.js';

const PING_EVERY = 25_000;
const PONG_TIMEOUT = 10_000; // no frame at all this long after a ping: the socket is dead
const BACKOFF_BASE = 500;
const BACKOFF_CAP = 15_000;

const forceSSE = new URLSearchParams(location.search).get('transport') === 'sse';

const unset = () => {
  throw new Error('parley: conn.on handler not set');
};

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
export const conn = {
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

  /** What the connection hands to the rest of the client. */
  on: {
    prepare: unset, // (room) => promise: history is loaded, join after lastSeq
    message: unset, // (message) from either transport
    ack: unset, // (id): the server holds the message durably
    sendError: unset, // (id, ApiError): a send attempt failed
    errorFrame: unset, // (frame) of type error
    live: unset, // (room): joined; its replay follows
    putOut: unset, // (room name, reason): the server ended my subscription: removed or banned
    membership: unset, // (frame): my place in a room changed (added, a role, a direct room made with me): the room list is stale
    signedOut: unset, // the server no longer accepts the session
  },

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
    if (this.stopped || !state.room) return;
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

  /** renew reopens a live connection at once, so it runs on the session's new token (cookie). */
  renew() {
    if (this.stopped) return;
    this.attempt = 0;
    this.connect();
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
    if (this.attempt >= 3) this.checkSession();
  },

  async checkSession() {
    try {
      await api('GET', '/api/rooms?limit=1');
    } catch (err) {
      if (err.status === 401) this.on.signedOut();
    }
  },

  setState(s) {
    this.state = s;
    this.render();
  },

  render() {
    renderConn({ state: this.state, mode: this.mode, retryAt: this.retryAt, waiting: Boolean(this.timers.retry) });
  },

  /** live: messages of the open room flow; the handler re-sends what is unacknowledged. */
  becameLive(r) {
    this.attempt = 0;
    clearInterval(this.timers.tick);
    this.setState('live');
    this.on.live(r);
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
          () => this.on.ack(entry.id), // 202: durably accepted
          (err) => this.on.sendError(entry.id, err),
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

  /**
   * prepareJoin loads room r's history before a join. True when the join
   * may go ahead: history is there, the attempt is still current() and r
   * still open. A failure of a current attempt is said, then retried later.
   */
  async prepareJoin(r, current) {
    try {
      await this.on.prepare(r);
    } catch (err) {
      if (!current()) return false;
      if (err.status === 401) this.on.signedOut();
      else {
        notice(t('transport.loadFailed', { error: err.message }), { kind: 'error' });
        this.scheduleReconnect();
      }
      return false;
    }
    return current() && r === state.room; // false: superseded meanwhile
  },

  /* ---- WebSocket ---- */

  openWS() {
    const url = wsURL(location.origin);
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
      // 1008: the session ended (signed out elsewhere, or its token
      // expired). Ask the API: a 401 takes the page back to sign-in; an
      // answer means only the token this socket was opened with expired
      // (it was refreshed since), so come back at once on the new one.
      if (ev.code === 1008) {
        this.attempt = 0;
        this.checkSession();
        this.scheduleReconnect({ prompt: true });
        return;
      }
      if (ev.code === 1009) notice(t('transport.closed', { reason: ev.reason || t('transport.closedCode', { code: ev.code }) }), { kind: 'error' });
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
      if (err.status === 401) this.on.signedOut();
      else this.scheduleReconnect();
      return;
    }
    if (this.stopped) return;
    this.mode = 'sse';
    notice(t('transport.sseFallback'));
    this.connect();
  },

  /** joinWS joins the open room after its history is loaded, asking for everything after the last seq shown. */
  async joinWS(ws) {
    const r = state.room;
    if (!(await this.prepareJoin(r, () => this.ws === ws))) return;
    // A room I may not read has nothing to join; the connection is still
    // live for the next room, and for sends still pending elsewhere.
    if (r.denied) return this.becameLive(r);
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
        this.on.message(f);
        break;
      case 'joined':
        if (state.room && f.room === state.room.name) this.becameLive(state.room);
        break;
      case 'ack':
        this.on.ack(f.id);
        break;
      case 'error':
        this.on.errorFrame(f);
        break;
      case 'left':
        // The answer to my own leave has no reason; one with a reason says
        // the server put me out of the room.
        if (f.reason) this.on.putOut(f.room, f.reason);
        break;
      case 'membership':
        this.on.membership(f);
        break;
      case 'pong':
        break;
      default:
      // Unknown frame types are extensions of the contract: ignore them.
    }
  },

  /* ---- Server-Sent Events ---- */

  async openSSE() {
    const r = state.room;
    const marker = {}; // identifies this attempt across the await
    this.sseAttempt = marker;
    if (!(await this.prepareJoin(r, () => this.sseAttempt === marker)) || this.stopped) return;
    if (r.denied) return this.becameLive(r); // nothing to stream (see joinWS)
    // EventSource reconnects by itself and then sends Last-Event-ID, which
    // the server prefers to ?after=; we only build a new one when it gives
    // up (readyState CLOSED) or the room changes.
    const es = new EventSource(eventsURL(location.origin, r.name, r.lastSeq));
    this.es = es;
    es.onopen = () => this.becameLive(r);
    es.onmessage = (ev) => {
      try {
        this.on.message(JSON.parse(ev.data));
      } catch {
        console.warn('parley: event is not JSON', ev.data);
      }
    };
    es.addEventListener('left', (ev) => {
      try {
        const f = JSON.parse(ev.data);
        if (f.reason) this.on.putOut(f.room || r.name, f.reason);
      } catch {
        console.warn('parley: event is not JSON', ev.data);
      }
    });
    es.onerror = (ev) => {
      if (this.es !== es) return;
      // The server's "event: error" (a send refused after its POST was
      // answered: muted, banned meanwhile) arrives by the very name the
      // browser uses for a failing connection; only it carries data.
      if (typeof ev.data === 'string') {
        try {
          this.on.errorFrame(JSON.parse(ev.data));
        } catch {
          console.warn('parley: event is not JSON', ev.data);
        }
        return;
      }
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up: the server answered other than 200, which
        // is a 401 when the session ended. Find out now, not after backoff.
        this.checkSession();
        this.scheduleReconnect();
      }
      else this.setState('reconnecting'); // the browser retries on its own
    };
  },
};
