// ParleyClient: a small, self-contained client of Parley's wire
// (shared/PROTOCOL.md) for programs in the browser — no DOM, no imports.
//
//   import { ParleyClient } from '/static/js/parley-client.js';
//   const c = new ParleyClient({ transport: 'ws' }); // cookie of a signed-in page, or { token }
//   c.on('message', (m) => console.log(m.room, m.seq, m.user, m.text));
//   await c.join('general', { after: 0 });
//   await c.send('general', 'hello');
//
// What it promises, per room: every message exactly once, in seq order. It
// keeps the last seq delivered, drops repeats, and on a gap (seq N then
// N+2) fetches the history after N before delivering what follows. On every
// reconnect it re-joins each room with `after` = that seq, so the server
// replays what was missed. A send is retried under the same id — the
// server's idempotency key — until it is acknowledged or its budget ends.

const PING_EVERY = 25_000;
const PONG_TIMEOUT = 10_000; // no frame this long after a ping: the socket is dead
const BACKOFF_BASE = 500;
const BACKOFF_CAP = 15_000;
const SEND_BUDGET = 60_000;
const HISTORY_LIMIT = 200;
// Error codes that may pass: the send goes again, same id, within its budget.
const RETRYABLE = new Set(['rate_limited', 'unavailable', 'internal']);

/** ParleyError is what a failed send or request rejects with. */
export class ParleyError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.name = 'ParleyError';
    this.code = code;
    this.status = status;
  }
}

/** wsURL is the WebSocket URL of the server at base, with the token when there is one. */
export function wsURL(base, token) {
  const u = new URL('/ws', base);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  if (token) u.searchParams.set('token', token);
  return u.href;
}

/** eventsURL is room's SSE URL resuming after seq `after` (none: live only). */
export function eventsURL(base, room, after, token) {
  const u = new URL(`/api/rooms/${encodeURIComponent(room)}/events`, base);
  if (after != null) u.searchParams.set('after', String(after));
  if (token) u.searchParams.set('token', token);
  return u.href;
}

/**
 * ParleyClient is an EventTarget; on(type, fn) is a shorthand that passes
 * the event's detail. Events: 'message' (a message), 'state' ('connecting' |
 * 'live' | 'reconnecting' | 'closed'), 'error' (an error frame that
 * concerns no pending send, or a failure of the transport).
 */
export class ParleyClient extends EventTarget {
  #base;
  #token;
  #mode;
  #auto;
  #rooms = new Map(); // name -> { last, joined, waiters, chain, es }
  #pending = new Map(); // id -> { room, text, resolve, reject, timer }
  #ws = null;
  #wsOpenedOnce = false;
  #attempt = 0;
  #timers = { retry: 0, ping: 0, pong: 0 };
  #closed = false;
  state = 'connecting';

  /** @param {{baseUrl?: string, token?: string, transport?: 'ws'|'sse'|'auto'}} opts */
  constructor({ baseUrl, token, transport = 'ws' } = {}) {
    super();
    this.#base = baseUrl || globalThis.location?.origin;
    if (!this.#base) throw new Error('parley: baseUrl is required outside a page');
    this.#token = token || '';
    this.#auto = transport === 'auto';
    this.#mode = transport === 'sse' ? 'sse' : 'ws';
  }

  /** transport is the one in use: 'ws' or 'sse' ('auto' falls back to SSE when WebSocket never opens). */
  get transport() {
    return this.#mode;
  }

  /** on subscribes fn to events of type; it returns a function that unsubscribes. */
  on(type, fn) {
    const h = (ev) => fn(ev.detail);
    this.addEventListener(type, h);
    return () => this.removeEventListener(type, h);
  }

  /** last is the last seq delivered of room (null: none yet). */
  last(room) {
    return this.#rooms.get(room)?.last ?? null;
  }

  /**
   * join subscribes to room; with `after`, the messages after that seq are
   * replayed first. It resolves once the server says joined, and rejects
   * with the ParleyError of an error frame about the room before that.
   */
  join(room, { after } = {}) {
    let r = this.#rooms.get(room);
    if (!r) {
      r = { last: after ?? null, joined: false, waiters: [], chain: Promise.resolve(), es: null };
      this.#rooms.set(room, r);
    }
    const done = new Promise((resolve, reject) => r.waiters.push({ resolve, reject }));
    if (this.#mode === 'sse') this.#openSSE(room, r);
    else if (this.#ws?.readyState === WebSocket.OPEN) this.#frame({ type: 'join', room, after: r.last ?? undefined });
    else if (!this.#ws) this.#connect();
    return done;
  }

  /** leave unsubscribes from room. */
  leave(room) {
    const r = this.#rooms.get(room);
    if (!r) return;
    this.#rooms.delete(room);
    r.es?.close();
    this.#frame({ type: 'leave', room });
  }

  /**
   * send posts text to room under id (a fresh UUID by default) and resolves
   * with the id once the server holds it durably. It rejects with a
   * ParleyError {code, message}: the server's code, or 'timeout' past the
   * budget. Unacknowledged sends go out again, same id, on every reconnect,
   * and after an answer that may pass (rate_limited, unavailable, internal).
   */
  send(room, text, { id = crypto.randomUUID(), budget = SEND_BUDGET } = {}) {
    if (this.#closed) return Promise.reject(new ParleyError('closed', 'client closed'));
    return new Promise((resolve, reject) => {
      const p = { room, text, resolve, reject, timer: 0 };
      p.timer = setTimeout(() => this.#settle(id, new ParleyError('timeout', 'no ack within the send budget')), budget);
      this.#pending.set(id, p);
      this.#transmit(id, p);
    });
  }

  /** reconnect drops the connection as a network failure would; the client comes back and resumes. */
  reconnect() {
    if (this.#mode === 'ws') this.#ws?.close(4000, 'client reconnect');
    else for (const [room, r] of this.#rooms) (r.es?.close(), this.#openSSE(room, r));
  }

  /** close ends the client for good; pending sends reject with code 'closed'. */
  close() {
    this.#closed = true;
    this.#teardown();
    for (const r of this.#rooms.values()) r.es?.close();
    for (const id of [...this.#pending.keys()]) this.#settle(id, new ParleyError('closed', 'client closed'));
    this.#setState('closed');
  }

  /* ---- shared ---- */

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #setState(s) {
    if (this.state === s || this.state === 'closed') return;
    this.state = s;
    this.#emit('state', s);
  }

  #settle(id, err) {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(id);
  }

  #transmit(id, p) {
    if (this.#mode === 'sse') return this.#post(id, p);
    if (!this.#ws && !this.#timers.retry) this.#connect(); // a send before any join
    this.#frame({ type: 'send', room: p.room, id, text: p.text }); // else sent on open
  }

  async #request(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (this.#token) headers.Authorization = `Bearer ${this.#token}`;
    if (body) headers['Content-Type'] = 'application/json';
    const res = await fetch(new URL(path, this.#base), { method, headers, body: body && JSON.stringify(body), credentials: 'same-origin' });
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new ParleyError(data?.error?.code || 'internal', data?.error?.message || res.statusText, res.status);
    return data;
  }

  /** deliver queues m behind what room is already delivering, so order holds across a gap fill. */
  #deliver(m) {
    const r = this.#rooms.get(m.room);
    if (!r) return;
    r.chain = r.chain.then(() => this.#accept(m.room, r, m)).catch((err) => this.#emit('error', err));
  }

  async #accept(room, r, m) {
    if (r.last != null && m.seq <= r.last) return; // a repeat
    if (r.last != null && m.seq > r.last + 1) {
      // A gap: fetch what lies between before delivering m.
      let after = r.last;
      for (;;) {
        const h = await this.#request('GET', `/api/rooms/${encodeURIComponent(room)}/messages?after=${after}&limit=${HISTORY_LIMIT}`);
        for (const x of h.messages) {
          if (x.seq >= m.seq) break;
          if (x.seq > r.last) this.#give(r, { ...x, room });
        }
        after = r.last;
        if (!h.has_more || after >= m.seq - 1 || h.messages.length === 0) break;
      }
    }
    this.#give(r, m);
  }

  #give(r, m) {
    r.last = m.seq;
    const { type, ...msg } = m;
    this.#emit('message', msg);
  }

  #joined(room) {
    const r = this.#rooms.get(room);
    if (!r) return;
    r.joined = true;
    for (const w of r.waiters.splice(0)) w.resolve();
    if ([...this.#rooms.values()].every((x) => x.joined)) {
      this.#attempt = 0;
      this.#setState('live');
    }
  }

  #backoff() {
    const ceiling = Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** this.#attempt++);
    return Math.random() * ceiling;
  }

  /* ---- WebSocket ---- */

  #teardown() {
    clearTimeout(this.#timers.retry);
    clearInterval(this.#timers.ping);
    clearTimeout(this.#timers.pong);
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      ws.close(1000, 'client closing');
    }
  }

  #connect() {
    this.#teardown();
    if (this.#closed) return;
    this.#setState(this.#attempt === 0 && !this.#wsOpenedOnce ? 'connecting' : 'reconnecting');
    const ws = new WebSocket(wsURL(this.#base, this.#token));
    this.#ws = ws;
    ws.onopen = () => {
      this.#wsOpenedOnce = true;
      this.#timers.ping = setInterval(() => this.#ping(), PING_EVERY);
      // Resume: every room from its last seq; then what is unacknowledged, same ids.
      for (const [room, r] of this.#rooms) {
        r.joined = false;
        this.#frame({ type: 'join', room, after: r.last ?? undefined });
      }
      for (const [id, p] of this.#pending) this.#transmit(id, p);
    };
    ws.onmessage = (ev) => this.#onFrame(ev.data);
    ws.onclose = () => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      clearInterval(this.#timers.ping);
      clearTimeout(this.#timers.pong);
      if (this.#closed) return;
      if (this.#auto && !this.#wsOpenedOnce) {
        // WebSocket never opened: something on the way blocks it. SSE + POST from now on.
        this.#mode = 'sse';
        for (const [room, r] of this.#rooms) this.#openSSE(room, r);
        for (const [id, p] of this.#pending) this.#transmit(id, p);
        return;
      }
      this.#setState('reconnecting');
      this.#timers.retry = setTimeout(() => this.#connect(), this.#backoff());
    };
  }

  #frame(obj) {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(obj));
  }

  #ping() {
    this.#frame({ type: 'ping' });
    clearTimeout(this.#timers.pong);
    this.#timers.pong = setTimeout(() => this.#ws?.close(4000, 'no pong'), PONG_TIMEOUT);
  }

  #onFrame(data) {
    clearTimeout(this.#timers.pong);
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    if (f.type === 'message') this.#deliver(f);
    else if (f.type === 'joined') this.#joined(f.room);
    else if (f.type === 'ack') this.#settle(f.id);
    else if (f.type === 'error') {
      const err = new ParleyError(f.code, f.message);
      const p = f.id && this.#pending.get(f.id);
      if (p && RETRYABLE.has(f.code)) setTimeout(() => this.#pending.get(f.id) === p && this.#transmit(f.id, p), 250 + Math.random() * 1000);
      else if (p) this.#settle(f.id, err);
      else {
        Object.assign(err, { room: f.room });
        const r = f.room && this.#rooms.get(f.room);
        if (r && !r.joined && r.waiters.length) {
          this.#rooms.delete(f.room); // refused: not rejoined on reconnect
          for (const w of r.waiters.splice(0)) w.reject(err);
        }
        this.#emit('error', err);
      }
    }
    // Other types (left, pong, receipts, ...) extend the contract: ignored here.
  }

  /* ---- SSE + POST ---- */

  #openSSE(room, r) {
    r.es?.close();
    if (this.#closed) return;
    // EventSource reconnects by itself with Last-Event-ID; a new one is made
    // only when it gives up (CLOSED), resuming from the last seq delivered.
    const es = new EventSource(eventsURL(this.#base, room, r.last, this.#token));
    r.es = es;
    r.joined = false;
    es.onopen = () => this.#joined(room);
    es.onmessage = (ev) => {
      try {
        this.#deliver({ ...JSON.parse(ev.data), room });
      } catch {
        /* not JSON: ignore */
      }
    };
    es.onerror = () => {
      if (r.es !== es || this.#closed) return;
      r.joined = false;
      this.#setState('reconnecting');
      if (es.readyState === EventSource.CLOSED) setTimeout(() => r.es === es && this.#openSSE(room, r), this.#backoff());
    };
  }

  // POSTs of one client go one at a time, so the server sequences them in the order sent.
  #posts = Promise.resolve();

  #post(id, p) {
    this.#posts = this.#posts.then(async () => {
      for (;;) {
        if (!this.#pending.has(id)) return;
        try {
          await this.#request('POST', `/api/rooms/${encodeURIComponent(p.room)}/messages`, { id, text: p.text });
          return this.#settle(id);
        } catch (err) {
          // A refusal is final; a network failure or a code that may pass is retried, same id.
          if (err instanceof ParleyError && !RETRYABLE.has(err.code)) return this.#settle(id, err);
          await new Promise((res) => setTimeout(res, this.#backoff()));
        }
      }
    });
  }
}
