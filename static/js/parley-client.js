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
// server's idempotency key — until it is acknowledged or its budget ends;
// so are edits, deletes and reactions (the message lifecycle), which
// arrive as items of their own that fold into their target (fold,
// Timeline). The chat page (main.js, through transport.js and outbox.js) runs on it.

const PING_EVERY = 25_000;
const PONG_TIMEOUT = 10_000; // no frame this long after a ping: the socket is dead
const BACKOFF_BASE = 500;
const BACKOFF_CAP = 15_000;
// The first retry after a lost connection waits at most this (ms): at once,
// but spread, so that the clients of an instance that died do not all
// reach the load balancer's other instances in the same instant.
const RECONNECT_SPREAD = 50;
const SEND_BUDGET = 60_000;
const POST_RETRY = 1_000; // a POST with no answer goes again after this times its attempts
const REQUEST_TIMEOUT = 15_000;
const HISTORY_LIMIT = 200;
const NOTES_KEPT = 500; // notification ids remembered to drop repeats
// Error codes that may pass: the send goes again, same id, within its budget.
const RETRYABLE = new Set(['rate_limited', 'unavailable', 'internal']);

/**
 * ParleyError is what a failed send or request rejects with. key and params
 * are the server's name for its message and the values in it (a format
 * such as "text must be at most %d characters" and ["4000"]), for a client
 * that shows the message in its own language; '' and [] for the client's
 * own errors and a server message without a key.
 */
export class ParleyError extends Error {
  constructor(code, message, status = 0, key = '', params = []) {
    super(message);
    this.name = 'ParleyError';
    this.code = code;
    this.status = status;
    this.key = key || '';
    this.params = Array.isArray(params) ? params : [];
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
 * the event's detail. Events:
 *   'message'    a message, once each, in seq order per room;
 *   'state'      'connecting' | 'live' | 'reconnecting' | 'offline' | 'closed'
 *                (live: the transport is up and every room is joined);
 *   'joined'     {room, last_seq}: a (re)join of room went through; its replay follows;
 *   'left'       {room, reason}: a subscription ended; reason 'removed' or
 *                'banned' when the server put me out (the room is then
 *                dropped, not re-joined), '' for the answer to my own leave;
 *   'membership' the frame (without type): my place in a room changed;
 *   'denied'     a ParleyError with room: a join was refused (not_found,
 *                forbidden, ...); the room is dropped;
 *   'disconnect' {code, reason}: the connection was lost (a WebSocket close
 *                code; 4000 for one the client dropped, 0 for an event
 *                stream the browser gave up on); the client comes back by itself;
 *   'transport'  'sse': 'auto' fell back to SSE + POST;
 *   'read'       {room, seq}: my read position in room moved (by any of my
 *                connections, on any instance); over SSE only for the
 *                rooms whose streams are open;
 *   'receipt'    {room, user, seq}: a member's read position moved, in a
 *                direct room or a small one I am joined to;
 *   'notification' {id, room, seq, from, text, kind, ts}: a mention or a
 *                direct message I had not read in time, once per id (every
 *                SSE stream carries it: repeats are dropped);
 *   'error'      a ParleyError of an error frame that concerns no pending
 *                send (err.id names a send already acknowledged: it failed
 *                after all), or a failure of the transport.
 */
export class ParleyClient extends EventTarget {
  #base;
  #token;
  #mode;
  #auto;
  #rooms = new Map(); // name -> { last, joined, broken, waiters, chain, es }
  #pending = new Map(); // id -> { room, type, fields, rest, resolve, reject, timer, ackTimer, tries, attempts, ackTimeout, lastErr }
  #ws = null;
  #wsOpenedOnce = false;
  #wanted = false; // a connection was asked for (connect, join or send): come back when online again
  #offline = false;
  #attempt = 0;
  #retryAt = 0;
  #prompt = true; // the next lost connection is retried at once: it was live since the last such retry
  #timers = { retry: 0, ping: 0, pong: 0 };
  #closed = false;
  #probing = false; // a probe (see probe) is under way: no socket meanwhile
  #reads = new Map(); // room -> seq: read positions to send once the socket opens
  #notes = new Set(); // ids of notifications delivered, to drop the repeats of several streams
  state = 'connecting';

  /** @param {{baseUrl?: string, token?: string, transport?: 'ws'|'sse'|'auto'}} opts */
  constructor({ baseUrl, token, transport = 'ws' } = {}) {
    super();
    this.#base = baseUrl || globalThis.location?.origin;
    if (!this.#base) throw new Error('parley: baseUrl is required outside a page');
    this.#token = token || '';
    this.#auto = transport === 'auto';
    this.#mode = transport === 'sse' ? 'sse' : 'ws';
    // The browser knows when there is no network: wait for it rather than
    // spend the backoff on connections that cannot open.
    if (typeof globalThis.addEventListener === 'function') {
      globalThis.addEventListener('offline', this.#onOffline);
      globalThis.addEventListener('online', this.#onOnline);
    }
    if (globalThis.navigator?.onLine === false) {
      this.#offline = true;
      this.state = 'offline';
    }
  }

  /** transport is the one in use: 'ws' or 'sse' ('auto' falls back to SSE when WebSocket never opens while the server answers HTTP). */
  get transport() {
    return this.#mode;
  }

  /** retryAt is when the client tries again (ms since the epoch) while it waits out a backoff, else 0. */
  get retryAt() {
    return this.#retryAt;
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
   * connect opens the connection before any join or send, so that the
   * state says whether the server can be reached (live with no room
   * joined). join and send connect by themselves.
   */
  connect() {
    if (this.#closed) return;
    this.#wanted = true;
    if (this.#mode === 'sse') this.#recompute();
    else if (!this.#ws && !this.#timers.retry && !this.#offline) this.#connect();
  }

  /**
   * join subscribes to room; with `after`, the messages after that seq are
   * replayed first. It resolves once the server says joined, and rejects
   * with the ParleyError of an error frame about the room before that.
   */
  join(room, { after } = {}) {
    if (this.#closed) return Promise.reject(new ParleyError('closed', 'client closed'));
    this.#wanted = true;
    let r = this.#rooms.get(room);
    if (!r) {
      r = { last: after ?? null, joined: false, broken: false, waiters: [], chain: Promise.resolve(), es: null };
      this.#rooms.set(room, r);
    }
    const done = new Promise((resolve, reject) => r.waiters.push({ resolve, reject }));
    if (this.#offline) return done; // joined when the network is back
    if (this.#mode === 'sse') this.#openSSE(room, r);
    else if (this.#ws?.readyState === WebSocket.OPEN) {
      r.joined = false;
      this.#frame({ type: 'join', room, after: r.last ?? undefined });
      this.#recompute();
    } else if (!this.#ws && !this.#timers.retry) this.#connect();
    return done;
  }

  /** leave unsubscribes from room. */
  leave(room) {
    const r = this.#rooms.get(room);
    if (!r) return;
    this.#rooms.delete(room);
    r.es?.close();
    this.#frame({ type: 'leave', room });
    this.#recompute();
  }

  /**
   * read tells the server that I have read room up to seq: a read frame
   * over WebSocket (no answer; an error frame on bad input), PUT
   * .../read over SSE (it resolves once the server took it, and rejects
   * with its ParleyError). A position given while the socket is down goes
   * out when it opens (only the highest per room: the server never moves
   * back anyway). The 'read' event says when it took effect.
   */
  read(room, seq) {
    if (this.#closed) return Promise.reject(new ParleyError('closed', 'client closed'));
    if (!Number.isInteger(seq) || seq < 0) return Promise.reject(new ParleyError('bad_request', 'seq must be a whole number'));
    if (this.#mode === 'sse') return this.#request('PUT', `/api/rooms/${encodeURIComponent(room)}/read`, { seq }).then(() => {});
    if (this.#ws?.readyState === WebSocket.OPEN) this.#frame({ type: 'read', room, seq });
    else this.#reads.set(room, Math.max(seq, this.#reads.get(room) ?? 0));
    return Promise.resolve();
  }

  /**
   * send posts text to room under id (a fresh UUID by default) and resolves
   * with the id once the server holds it durably. It rejects with a
   * ParleyError {code, message}: the server's code, 'network' when the last
   * of `attempts` transmissions got no answer, or 'timeout' past the budget.
   * Unacknowledged sends go out again, same id, on every reconnect, after
   * an answer that may pass (rate_limited, unavailable, internal), and with
   * ackTimeout (ms) when a transmission over WebSocket has no ack that long.
   * With replyTo (a seq of the room) the message answers that item.
   */
  send(room, text, { replyTo, ...opts } = {}) {
    if (replyTo != null && !isSeq(replyTo)) return Promise.reject(new ParleyError('bad_request', 'replyTo must be a seq (a whole number >= 1)'));
    const reply = replyTo ? { reply_to: replyTo } : {};
    return this.#submit(room, 'send', { text, ...reply }, () => ({ method: 'POST', path: '/messages', body: { text, ...reply } }), opts);
  }

  /**
   * edit replaces the text of my message at seq target of room; it is
   * acknowledged and retried as a send is (same options) and resolves with
   * its id. The edit comes back as an item of kind "edit" (see fold).
   */
  edit(room, target, text, opts = {}) {
    if (!isSeq(target)) return Promise.reject(new ParleyError('bad_request', 'target must be a seq (a whole number >= 1)'));
    return this.#submit(room, 'edit', { target, text }, () => ({ method: 'PATCH', path: `/messages/${target}`, body: { text } }), opts);
  }

  /**
   * delete erases the message at seq target of room (mine, or any in a
   * room I moderate): acknowledged and retried as a send is; an item of
   * kind "delete" follows.
   */
  delete(room, target, opts = {}) {
    if (!isSeq(target)) return Promise.reject(new ParleyError('bad_request', 'target must be a seq (a whole number >= 1)'));
    return this.#submit(room, 'delete', { target }, (id) => ({ method: 'DELETE', path: `/messages/${target}?id=${encodeURIComponent(id)}` }), opts);
  }

  /**
   * react puts my reaction emoji on the message at seq target of room (on
   * false: takes it back): acknowledged and retried as a send is; an item
   * of kind "reaction" follows.
   */
  react(room, target, emoji, on = true, opts = {}) {
    if (!isSeq(target)) return Promise.reject(new ParleyError('bad_request', 'target must be a seq (a whole number >= 1)'));
    if (typeof emoji !== 'string' || !emoji) return Promise.reject(new ParleyError('bad_request', 'emoji must be one emoji'));
    on = on !== false;
    return this.#submit(room, 'react', { target, emoji, on }, () => ({ method: 'POST', path: `/messages/${target}/reactions`, body: { emoji, on } }), opts);
  }

  /**
   * submit sends a frame of type (send, edit, delete, react) with fields
   * under an id, acknowledged and retried alike; over SSE, rest(id) is its
   * REST route under /api/rooms/{room} ({method, path, body}; the id goes
   * in the body).
   */
  #submit(room, type, fields, rest, { id = newId(), budget = SEND_BUDGET, attempts = Infinity, ackTimeout = 0 } = {}) {
    if (this.#closed) return Promise.reject(new ParleyError('closed', 'client closed'));
    this.#wanted = true;
    return new Promise((resolve, reject) => {
      const p = { room, type, fields, rest, resolve, reject, timer: 0, ackTimer: 0, tries: 0, attempts, ackTimeout, lastErr: null };
      p.timer = setTimeout(() => this.#settle(id, new ParleyError('timeout', 'no ack within the send budget')), budget);
      this.#pending.set(id, p);
      this.#transmit(id, p);
    });
  }

  /**
   * reconnect drops the connection as a network failure would; the client
   * comes back (after a backoff; with now, at once: to run on a renewed
   * session, say) and resumes.
   */
  reconnect({ now = false } = {}) {
    if (this.#closed || this.#offline) return;
    if (this.#mode === 'sse') {
      for (const [room, r] of this.#rooms) this.#openSSE(room, r);
    } else if (now) {
      this.#attempt = 0;
      if (this.#ws || this.#timers.retry || this.#wanted) this.#connect();
    } else this.#drop('client reconnect', { quiet: true });
  }

  /** close ends the client for good; pending sends reject with code 'closed'. */
  close() {
    this.#closed = true;
    this.#teardown();
    if (typeof globalThis.removeEventListener === 'function') {
      globalThis.removeEventListener('offline', this.#onOffline);
      globalThis.removeEventListener('online', this.#onOnline);
    }
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

  /** recompute says live once the transport is up and every room joined, connecting while a join on it is outstanding. */
  #recompute() {
    if (this.#closed || this.#offline) return;
    const up = this.#mode === 'sse' || this.#ws?.readyState === WebSocket.OPEN;
    if (!up) return;
    if ([...this.#rooms.values()].every((r) => r.joined)) {
      this.#attempt = 0;
      this.#retryAt = 0;
      this.#prompt = true;
      this.#setState('live');
    } else if (this.state === 'live') this.#setState('connecting');
  }

  #settle(id, err) {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    clearTimeout(p.ackTimer);
    if (err) p.reject(err);
    else p.resolve(id);
  }

  #transmit(id, p) {
    if (this.#mode === 'sse') return this.#post(id, p);
    if (!this.#ws && !this.#timers.retry && !this.#offline) this.#connect(); // a send before any join
    if (this.#ws?.readyState !== WebSocket.OPEN) return; // it goes out on open
    if (p.tries >= p.attempts) return this.#settle(id, p.lastErr || new ParleyError('timeout', 'no ack after every attempt'));
    p.tries++;
    this.#frame({ type: p.type, room: p.room, id, ...p.fields });
    clearTimeout(p.ackTimer);
    if (p.ackTimeout) p.ackTimer = setTimeout(() => this.#pending.get(id) === p && this.#transmit(id, p), p.ackTimeout);
  }

  async #request(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (this.#token) headers.Authorization = `Bearer ${this.#token}`;
    if (body) headers['Content-Type'] = 'application/json';
    const init = { method, headers, body: body && JSON.stringify(body), credentials: 'same-origin' };
    if (typeof AbortSignal.timeout === 'function') init.signal = AbortSignal.timeout(REQUEST_TIMEOUT);
    let res;
    try {
      res = await fetch(new URL(path, this.#base), init);
    } catch {
      throw new ParleyError('network', 'no answer from the server');
    }
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const e = data?.error;
      throw new ParleyError(e?.code || 'internal', e?.message || res.statusText, res.status, e?.key, e?.params);
    }
    return data;
  }

  /** deliver queues m behind what room is already delivering, so order holds across a gap fill. */
  #deliver(m) {
    const r = this.#rooms.get(m.room);
    if (!r) return;
    r.chain = r.chain
      .then(() => this.#accept(m.room, r, m))
      .catch((err) => {
        // The gap could not be filled: drop what follows until a new join
        // replays from the last seq delivered.
        r.broken = true;
        this.#emit('error', err);
        this.#resync(m.room, r);
      });
  }

  async #accept(room, r, m) {
    if (r.broken || this.#rooms.get(room) !== r) return;
    if (r.last != null && m.seq <= r.last) return; // a repeat
    if (r.last != null && m.seq > r.last + 1) {
      // A gap: fetch what lies between before delivering m. History is the
      // authority on what lies there for me: seqs it skips before m (items
      // of a room from before I was let in) are none of mine.
      let after = r.last;
      let reached = false;
      for (;;) {
        const h = await this.#request('GET', `/api/rooms/${encodeURIComponent(room)}/messages?after=${after}&limit=${HISTORY_LIMIT}`);
        if (this.#rooms.get(room) !== r) return;
        for (const x of h.messages) {
          if (x.seq >= m.seq) {
            reached = true;
            break;
          }
          if (x.seq > r.last) this.#give(r, { ...x, room });
        }
        if (reached || r.last >= m.seq - 1 || !h.has_more || r.last === after) break;
        after = r.last;
      }
      // History does not have them yet (it lags the live stream): a join afresh replays them.
      if (!reached && r.last < m.seq - 1) throw new ParleyError('gap', `history of ${room} lacks seq ${r.last + 1}`);
    }
    this.#give(r, m);
  }

  #give(r, m) {
    r.last = m.seq;
    const { type, ...msg } = m;
    this.#emit('message', msg);
  }

  /** resync joins room afresh from its last seq, after a gap that could not be filled. */
  #resync(room, r) {
    if (this.#closed || this.#rooms.get(room) !== r) return;
    if (this.#mode === 'ws') this.#drop('a gap could not be filled');
    else setTimeout(() => this.#rooms.get(room) === r && this.#openSSE(room, r), this.#backoff());
  }

  #joined(room, lastSeq) {
    const r = this.#rooms.get(room);
    if (!r) return;
    r.joined = true;
    // Behind what is queued from before: the replay that follows is wanted again.
    r.chain = r.chain.then(() => {
      r.broken = false;
    });
    for (const w of r.waiters.splice(0)) w.resolve();
    this.#emit('joined', { room, last_seq: lastSeq ?? null });
    this.#recompute();
  }

  /** onErrorFrame takes an error frame, of WebSocket or of an event stream. */
  #onErrorFrame(f) {
    const err = new ParleyError(f.code, f.message || f.code, 0, f.key, f.params);
    if (f.room) err.room = f.room;
    if (f.id) err.id = f.id;
    const p = f.id && this.#pending.get(f.id);
    if (p) {
      if (RETRYABLE.has(f.code) && p.tries < p.attempts) {
        p.lastErr = err;
        clearTimeout(p.ackTimer);
        setTimeout(() => this.#pending.get(f.id) === p && this.#transmit(f.id, p), 250 + Math.random() * 1000);
      } else this.#settle(f.id, err);
      return;
    }
    const r = !f.id && f.room && this.#rooms.get(f.room);
    if (r && !r.joined) {
      // A refused join: the room is dropped, not re-joined on reconnect.
      this.#rooms.delete(f.room);
      r.es?.close();
      for (const w of r.waiters.splice(0)) w.reject(err);
      this.#emit('denied', err);
      this.#recompute();
    }
    this.#emit('error', err);
  }

  /** left takes the server's "left": with a reason it ended room's subscription, which is then not re-joined. */
  #left(room, reason, r = this.#rooms.get(room)) {
    if (reason && r && this.#rooms.get(room) === r) {
      this.#rooms.delete(room);
      r.es?.close();
      this.#recompute();
    }
    this.#emit('left', { room, reason: reason || '' });
  }

  #backoff() {
    const ceiling = Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** this.#attempt++);
    return Math.random() * ceiling;
  }

  /**
   * retry connects again: after a full-jitter backoff, or with lost (a
   * connection that was live is gone) at once, within RECONNECT_SPREAD.
   * Only the first loss after being live is retried at once: a connection
   * lost again before it was live (an instance that closes every socket)
   * backs off, and so does a failed attempt.
   */
  #retry(lost = false) {
    if (this.#closed || this.#offline) return;
    clearTimeout(this.#timers.retry);
    const now = lost && this.#prompt;
    if (now) this.#prompt = false;
    const delay = now ? Math.random() * RECONNECT_SPREAD : this.#backoff();
    this.#retryAt = Date.now() + delay;
    this.#timers.retry = setTimeout(() => {
      this.#timers.retry = 0;
      this.#connect();
    }, delay);
    this.#setState('reconnecting');
  }

  #onOffline = () => {
    if (this.#closed) return;
    this.#offline = true;
    this.#teardown();
    for (const r of this.#rooms.values()) {
      r.es?.close();
      r.es = null;
      r.joined = false;
    }
    this.#setState('offline');
  };

  #onOnline = () => {
    if (this.#closed || !this.#offline) return;
    this.#offline = false;
    this.#attempt = 0;
    this.#setState('connecting');
    if (this.#mode === 'sse') {
      for (const [room, r] of this.#rooms) this.#openSSE(room, r);
      for (const [id, p] of this.#pending) this.#transmit(id, p);
      this.#recompute();
    } else if (this.#wanted || this.#rooms.size || this.#pending.size) this.#connect();
  };

  /* ---- WebSocket ---- */

  #teardown() {
    clearTimeout(this.#timers.retry);
    clearInterval(this.#timers.ping);
    clearTimeout(this.#timers.pong);
    this.#timers.retry = 0;
    this.#retryAt = 0;
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000, 'client closing');
    }
  }

  /**
   * drop ends the socket now (a half-open one may take long to say it
   * closed) and reconnects: a dead one at once, as any lost connection; one
   * the program asked to drop (quiet) after a backoff.
   */
  #drop(reason, { quiet = false } = {}) {
    if (this.#mode !== 'ws') return;
    this.#teardown();
    if (!quiet) this.#emit('disconnect', { code: 4000, reason });
    this.#retry(!quiet);
  }

  #connect() {
    this.#teardown();
    if (this.#closed || this.#offline || this.#probing || this.#mode === 'sse') return;
    this.#setState(this.#attempt === 0 && !this.#wsOpenedOnce ? 'connecting' : 'reconnecting');
    let ws;
    try {
      ws = new WebSocket(wsURL(this.#base, this.#token));
    } catch {
      if (this.#auto && !this.#wsOpenedOnce) this.#probe();
      else this.#retry();
      return;
    }
    this.#ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.#wsOpenedOnce = true;
      this.#timers.ping = setInterval(() => this.#ping(), PING_EVERY);
      // Resume: every room from its last seq; then what is unacknowledged, same ids.
      for (const [room, r] of this.#rooms) {
        r.joined = false;
        this.#frame({ type: 'join', room, after: r.last ?? undefined });
      }
      for (const [id, p] of this.#pending) this.#transmit(id, p);
      for (const [room, seq] of this.#reads) this.#frame({ type: 'read', room, seq });
      this.#reads.clear();
      this.#recompute();
    };
    ws.onmessage = (ev) => this.#onFrame(ev.data);
    ws.onclose = (ev) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      clearInterval(this.#timers.ping);
      clearTimeout(this.#timers.pong);
      if (this.#closed) return;
      for (const r of this.#rooms.values()) r.joined = false;
      if (this.#auto && !opened && !this.#wsOpenedOnce) return this.#probe();
      this.#emit('disconnect', { code: ev.code, reason: ev.reason });
      // A connection that was open is lost (1012: the server restarts; 1006:
      // it died; 1008: the session this socket was opened with ended, and
      // one renewed since works): come back at once, the load balancer has
      // other instances (a dead session is refused at once, and backs off).
      // A socket that never opened is a failed attempt: back off.
      this.#retry(opened);
    };
  }

  /**
   * probe decides, when WebSocket failed before it ever opened, between "the
   * server is down" (keep trying WebSocket with backoff) and "WebSocket is
   * blocked on the way" (the server answers HTTP: SSE + POST from now on).
   */
  async #probe() {
    if (this.#probing || this.#mode === 'sse') return;
    this.#probing = true;
    this.#setState('reconnecting');
    try {
      await this.#request('GET', '/api/rooms?limit=1');
    } catch (err) {
      this.#probing = false;
      if (this.#closed) return;
      if (err.status === 401) this.#emit('error', err);
      this.#retry();
      return;
    }
    this.#probing = false;
    if (this.#closed) return;
    this.#mode = 'sse';
    this.#emit('transport', 'sse');
    for (const [room, r] of this.#rooms) this.#openSSE(room, r);
    for (const [id, p] of this.#pending) this.#transmit(id, p);
    this.#recompute();
  }

  #frame(obj) {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(obj));
  }

  #ping() {
    this.#frame({ type: 'ping' });
    clearTimeout(this.#timers.pong);
    // Any frame clears this (see onFrame). A socket that stays silent is
    // half-open: drop it rather than wait for TCP to notice.
    this.#timers.pong = setTimeout(() => this.#drop('no answer to ping'), PONG_TIMEOUT);
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
    else if (f.type === 'joined') this.#joined(f.room, f.last_seq);
    else if (f.type === 'ack') this.#settle(f.id);
    else if (f.type === 'error') this.#onErrorFrame(f);
    else if (f.type === 'left') this.#left(f.room, f.reason);
    else if (f.type === 'membership') {
      const { type, ...rest } = f;
      this.#emit('membership', rest);
    } else if (f.type === 'read' || f.type === 'receipt' || f.type === 'notification') this.#onMissed(f.type, f);
    // Other types (pong, ...) extend the contract: ignored here.
  }

  /** onMissed takes a read, receipt or notification frame of either transport (What you missed). */
  #onMissed(type, f) {
    const { type: _, ...detail } = f;
    if (type === 'read' || type === 'receipt') {
      if (typeof f.room !== 'string' || !Number.isInteger(f.seq)) return;
      if (type === 'receipt' && typeof f.user !== 'string') return;
    } else {
      if (typeof f.id !== 'string' || typeof f.room !== 'string' || !Number.isInteger(f.seq)) return;
      if (this.#notes.has(f.id)) return;
      this.#notes.add(f.id);
      // Enough to catch the repeats of one delivery over several streams.
      if (this.#notes.size > NOTES_KEPT) this.#notes.delete(this.#notes.values().next().value);
    }
    this.#emit(type, detail);
  }

  /* ---- SSE + POST ---- */

  #openSSE(room, r) {
    r.es?.close();
    r.es = null;
    if (this.#closed || this.#offline) return;
    // EventSource reconnects by itself with Last-Event-ID; a new one is made
    // only when it gives up (CLOSED), resuming from the last seq delivered.
    const es = new EventSource(eventsURL(this.#base, room, r.last, this.#token));
    r.es = es;
    r.joined = false;
    this.#recompute();
    const parse = (ev) => {
      try {
        return JSON.parse(ev.data);
      } catch {
        return null; // not JSON: ignore
      }
    };
    es.onopen = () => r.es === es && this.#joined(room, null);
    es.onmessage = (ev) => {
      const m = parse(ev);
      if (m && r.es === es) this.#deliver({ ...m, room });
    };
    for (const type of ['read', 'receipt', 'notification']) {
      es.addEventListener(type, (ev) => {
        const f = parse(ev);
        if (f && r.es === es) this.#onMissed(type, type === 'read' ? { room, ...f } : f);
      });
    }
    es.addEventListener('left', (ev) => {
      const f = parse(ev);
      if (f && r.es === es) this.#left(f.room || room, f.reason, r);
    });
    es.onerror = (ev) => {
      if (r.es !== es || this.#closed) return;
      // The server's "event: error" (a send refused after its POST was
      // answered: muted, banned meanwhile) arrives by the very name the
      // browser uses for a failing connection; only it carries data.
      if (typeof ev.data === 'string') {
        const f = parse(ev);
        if (f) this.#onErrorFrame({ room, ...f });
        return;
      }
      r.joined = false;
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up: the server answered other than 200 (a 401
        // when the session ended, a 404 or 403 when the room is no longer
        // mine). Come back after a backoff, from the last seq delivered.
        this.#emit('disconnect', { code: 0, reason: 'event stream closed' });
        const delay = this.#backoff();
        this.#retryAt = Date.now() + delay;
        setTimeout(() => r.es === es && this.#openSSE(room, r), delay);
      }
      this.#setState('reconnecting'); // else the browser retries on its own
    };
  }

  // POSTs of one client go one at a time, so the server sequences them in the order sent.
  #posts = Promise.resolve();

  #post(id, p) {
    this.#posts = this.#posts.then(async () => {
      for (;;) {
        if (this.#pending.get(id) !== p) return;
        if (p.tries >= p.attempts) return this.#settle(id, p.lastErr || new ParleyError('timeout', 'no answer after every attempt'));
        p.tries++;
        try {
          const { method, path, body } = p.rest(id);
          await this.#request(method, `/api/rooms/${encodeURIComponent(p.room)}${path}`, body && { id, ...body });
          return this.#settle(id);
        } catch (err) {
          // A refusal is final; no answer, or a code that may pass, is retried, same id.
          if (err.code !== 'network' && !RETRYABLE.has(err.code)) return this.#settle(id, err);
          p.lastErr = err;
          if (p.tries >= p.attempts) return this.#settle(id, err);
          await new Promise((res) => setTimeout(res, Math.min(BACKOFF_CAP, POST_RETRY * p.tries)));
        }
      }
    });
  }
}

/**
 * newId makes a message id. randomUUID exists only in secure contexts, and
 * a page may well be opened over plain http on a LAN address, so fall back
 * to a v4 UUID built from getRandomValues, which every context has.
 */
export function newId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** isSeq: n is a seq of a room (a whole number >= 1). */
const isSeq = (n) => Number.isInteger(n) && n >= 1;

const LIFECYCLE = new Set(['edit', 'delete', 'reaction']);

/** isLifecycle reports whether item m is an edit, delete or reaction item (PROTOCOL.md v2, "Message lifecycle"). */
export function isLifecycle(m) {
  return LIFECYCLE.has(m?.kind);
}

/** targetOf is the seq of the message a lifecycle item is about; 0 for any other item. */
export function targetOf(it) {
  return isLifecycle(it) && isSeq(it.data?.target) ? it.data.target : 0;
}

/**
 * fold returns message m with the lifecycle item it (stored after m, about
 * m) applied, by exactly the rule of the server's chat.Message.Fold
 * (app/chat/lifecycle.go), so that history (folded by the server) and what
 * a client folds itself agree: an edit sets text and edited_ts; a delete
 * empties text, edited_ts and reactions for good; a reaction adds or
 * removes its user under its emoji (on absent counts as on), in order. A
 * deleted message takes nothing more. m itself is not changed.
 */
export function fold(m, it) {
  if (m.deleted || !it?.data) return m;
  switch (it.kind) {
    case 'edit':
      return { ...m, text: it.text, edited_ts: it.ts };
    case 'delete': {
      const { edited_ts, reactions, ...rest } = m;
      return { ...rest, deleted: true, text: '' };
    }
    case 'reaction': {
      const e = it.data.emoji;
      const users = m.reactions?.[e] || [];
      const i = users.indexOf(it.user);
      const on = it.data.on == null || it.data.on === true;
      if (on && i < 0) return { ...m, reactions: { ...m.reactions, [e]: [...users, it.user] } };
      if (!on && i >= 0) {
        const reactions = { ...m.reactions, [e]: users.filter((_, k) => k !== i) };
        if (!reactions[e].length) delete reactions[e];
        const out = { ...m, reactions };
        if (!Object.keys(reactions).length) delete out.reactions;
        return out;
      }
      return m;
    }
  }
  return m;
}

/**
 * Timeline holds the messages of one room as they stand, folding the
 * lifecycle items into them as they come:
 *
 *   - add(m, {upTo}) takes a message: live or replayed (upTo its own seq:
 *     nothing folded into it yet), or from history, which the server
 *     folded with every lifecycle item stored when it answered — at least
 *     those up to upTo (the highest seq the client had when it asked, or
 *     the page's last). Items kept for it with a higher seq are folded in.
 *   - apply(item) folds a lifecycle item into its target when the target
 *     is held and the item is newer than what is folded into it; an item
 *     about a message not held is kept (at most `keep` of them) for when
 *     it is added.
 *
 * Folding an item twice is harmless: items come in seq order, and folding
 * again a run of the last ones gives the same text, deletion and reactions
 * (a reaction taken back and put again may change its place in the order).
 */
export class Timeline {
  #msgs = new Map(); // seq -> message as it stands
  #upTo = new Map(); // seq -> the highest seq of items folded into it
  #kept = new Map(); // target -> [items] about a message not held
  #keptCount = 0;
  #keep;

  constructor({ keep = 1000 } = {}) {
    this.#keep = keep;
  }

  /** get is the message at seq as it stands, or undefined when not held. */
  get(seq) {
    return this.#msgs.get(seq);
  }

  /** add holds message m (see the class); it returns m as it stands. */
  add(m, { upTo = m.seq } = {}) {
    let cur = m;
    let top = Math.max(upTo, m.seq);
    for (const it of this.#kept.get(m.seq) || []) {
      if (it.seq <= top) continue;
      cur = fold(cur, it);
      top = it.seq;
    }
    this.#keptCount -= this.#kept.get(m.seq)?.length || 0;
    this.#kept.delete(m.seq);
    this.#msgs.set(m.seq, cur);
    this.#upTo.set(m.seq, top);
    return cur;
  }

  /** apply folds lifecycle item it into its target; it returns the target as it stands now, or null when nothing held changed. */
  apply(it) {
    const target = targetOf(it);
    if (!target || !Number.isInteger(it.seq)) return null;
    const m = this.#msgs.get(target);
    if (!m) {
      const list = this.#kept.get(target) || [];
      if (list.some((x) => x.seq === it.seq)) return null;
      list.push(it);
      list.sort((a, b) => a.seq - b.seq);
      this.#kept.set(target, list);
      if (++this.#keptCount > this.#keep) this.#dropOldest();
      return null;
    }
    if (it.seq <= this.#upTo.get(target)) return null;
    this.#upTo.set(target, it.seq);
    const next = fold(m, it);
    if (next === m) return null;
    this.#msgs.set(target, next);
    return next;
  }

  /** clear forgets everything (the room was left). */
  clear() {
    this.#msgs.clear();
    this.#upTo.clear();
    this.#kept.clear();
    this.#keptCount = 0;
  }

  /** dropOldest forgets the kept item of the lowest seq: its target is the least likely to load. */
  #dropOldest() {
    let low = null;
    for (const [target, list] of this.#kept) if (!low || list[0].seq < low[1][0].seq) low = [target, list];
    if (!low) return;
    low[1].shift();
    this.#keptCount--;
    if (!low[1].length) this.#kept.delete(low[0]);
  }
}
