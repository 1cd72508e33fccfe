// The live connection of the chat page, on the client library
// (parley-client.js): WebSocket /ws, or SSE + POST as a fallback, with its
// reconnects and backoff, joins resuming with `after`, gaps filled from
// history, ping/pong liveness and sends retried under the same id. Programs
// and the page thus speak the wire (shared/PROTOCOL.md) through one
// implementation.
//
// What this adapter adds is the page's: one room open at a time, whose
// history is loaded before it is joined; the connection indicator; the
// session that may have ended. What arrives goes to the handlers in conn.on,
// which main.js sets before start().

import { api } from './api.js';
import { errorText, t } from './i18n.js';
import { notice } from './notice.js';
import { ParleyClient, ParleyError } from './parley-client.js';
import { state } from './state.js';
import { renderConn } from './view.js';

// A history load that failed is tried again after a full-jitter backoff.
const BACKOFF_BASE = 500;
const BACKOFF_CAP = 15_000;
// Rooms joined for their badges at most (the server lets one WebSocket join 100).
const MAX_WATCHED = 50;

const forceSSE = new URLSearchParams(location.search).get('transport') === 'sse';

const unset = () => {
  throw new Error('parley: conn.on handler not set');
};

/**
 * conn owns the page's ParleyClient. States (the client's, but connecting
 * until the open room is joined): connecting, live, reconnecting (with a
 * countdown while the client waits out a backoff), offline (the browser
 * says there is no network), signedout.
 *
 * WebSocket is the default; the client switches to SSE + POST for the rest
 * of the visit when WebSocket fails before it ever opened while the server
 * answers plain HTTP (a proxy on the way breaks it). ?transport=sse forces
 * SSE from the start.
 */
export const conn = {
  client: null,
  fellBack: false, // the client fell back to SSE: one made after a stop starts there
  state: 'connecting',
  stopped: true, // until start(): opening the first room must not connect yet
  subscribed: '', // the room the client is joined to, or joining
  joined: null, // the open room (state.room) once the client said joined
  watched: new Set(), // rooms joined besides the open one, for their badges (WebSocket only)
  failures: 0, // disconnects and failed history loads since the last join: at 3, ask about the session
  deniedErr: null, // the error of the last refused join, which the client also reports as an error
  timers: { prepare: 0, tick: 0 },

  /** What the connection hands to the rest of the client. */
  on: {
    prepare: unset, // (room) => promise: history is loaded, join after lastSeq
    message: unset, // (message) from either transport, once each, in seq order, gaps filled
    errorFrame: unset, // ({code, message, id, room}): an error frame that no pending send took
    live: unset, // (room): joined; its replay follows
    putOut: unset, // (room name, reason): the server ended my subscription: removed or banned
    denied: unset, // (room name, ParleyError): the server refused to join the room
    membership: unset, // (frame): my place in a room changed (added, a role, a direct room made with me): the room list is stale
    read: unset, // ({room, seq}): my read position moved (any of my connections)
    receipt: unset, // ({room, user, seq}): a member's read position moved
    notification: unset, // (notification): a mention or direct message not read in time, once per id
    signedOut: unset, // the server no longer accepts the session
  },

  /** mode is the transport in use: ws or sse. */
  get mode() {
    return this.client?.transport ?? (forceSSE || this.fellBack ? 'sse' : 'ws');
  },

  start() {
    this.stopped = false;
    this.client ??= this.makeClient();
    this.client.connect();
    this.update();
    this.joinOpen();
  },

  /** stop closes the client; sends it had not settled wait (pending) for the next start. */
  stop() {
    this.stopped = true;
    clearTimeout(this.timers.prepare);
    clearInterval(this.timers.tick);
    const c = this.client;
    this.client = null;
    this.subscribed = '';
    this.joined = null;
    this.watched.clear();
    c?.close();
  },

  makeClient() {
    const c = new ParleyClient({ transport: forceSSE || this.fellBack ? 'sse' : 'auto' });
    // A client stopped since says nothing more to the page.
    const mine = (fn) => (detail) => this.client === c && fn(detail);
    c.on('state', mine(() => this.update()));
    c.on('message', mine((m) => this.on.message(m)));
    c.on(
      'joined',
      mine(({ room }) => {
        const r = state.room;
        if (r?.name !== room || this.subscribed !== room) return;
        this.joined = r;
        this.failures = 0;
        this.update();
        this.on.live(r);
      }),
    );
    c.on(
      'left',
      mine(({ room, reason }) => {
        // The answer to my own leave has no reason; one with a reason says
        // the server put me out of the room (the client no longer joins it).
        if (!reason) return;
        this.watched.delete(room);
        if (this.subscribed === room) this.subscribed = '';
        this.on.putOut(room, reason);
        this.update();
      }),
    );
    c.on('membership', mine((f) => this.on.membership(f)));
    c.on('read', mine((f) => this.on.read(f)));
    c.on('receipt', mine((f) => this.on.receipt(f)));
    c.on('notification', mine((f) => this.on.notification(f)));
    c.on(
      'denied',
      mine((err) => {
        this.deniedErr = err;
        // A watched room refused (not mine any more): only its badge goes.
        if (this.watched.delete(err.room) && this.subscribed !== err.room) return;
        if (this.subscribed === err.room) this.subscribed = '';
        this.on.denied(err.room, err);
        this.update();
      }),
    );
    c.on(
      'error',
      mine((err) => {
        if (err === this.deniedErr) return; // said as 'denied'
        if (err.status === 401) return this.on.signedOut();
        if (!(err instanceof ParleyError) || err.status || err.code === 'network' || err.code === 'gap') {
          // The transport's own trouble (a gap it could not fill, say): it
          // joins again from the last seq shown by itself.
          console.warn('parley:', err.message);
          return;
        }
        this.on.errorFrame({ code: err.code, message: err.message, key: err.key, params: err.params, id: err.id, room: err.room });
      }),
    );
    c.on(
      'disconnect',
      mine(({ code, reason }) => {
        this.joined = null;
        if (code === 1009) notice(t('transport.closed', { reason: reason || t('transport.closedCode', { code }) }), { kind: 'error' });
        // 1008: the session this socket was opened with ended; 0: the
        // browser gave up an event stream, a 401 when the session ended.
        // Ask the API: a 401 takes the page back to sign-in. Failing again
        // and again may mean the same rather than the network.
        if (code === 1008 || code === 0 || ++this.failures >= 3) this.checkSession();
      }),
    );
    c.on(
      'transport',
      mine(() => {
        this.fellBack = true;
        this.watched.clear(); // (none yet: watching starts once WebSocket is live)
        notice(t('transport.sseFallback'));
        this.update();
      }),
    );
    return c;
  },

  /**
   * joinOpen joins the open room once its history is loaded, asking for
   * everything after the last seq shown. A failed load is said, then tried
   * again after a backoff.
   */
  async joinOpen() {
    clearTimeout(this.timers.prepare);
    const r = state.room;
    const c = this.client;
    if (!r || !c || this.stopped) return;
    try {
      await this.on.prepare(r);
    } catch (err) {
      if (r !== state.room || this.client !== c) return;
      if (err.status === 401) return this.on.signedOut();
      notice(t('transport.loadFailed', { error: errorText(err) }), { kind: 'error' });
      const delay = Math.random() * Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** this.failures);
      if (++this.failures >= 3) this.checkSession();
      this.timers.prepare = setTimeout(() => this.joinOpen(), delay);
      return;
    }
    if (r !== state.room || this.client !== c || this.subscribed === r.name) return; // superseded, or joined meanwhile
    // A room I may not read has nothing to join; the connection is still
    // live for the next room, and for sends still pending elsewhere.
    if (r.denied) return this.update();
    this.subscribed = r.name;
    // Joined already, for its badge: afresh, from what the page shows.
    if (this.watched.has(r.name)) c.leave(r.name);
    c.join(r.name, { after: r.lastSeq }).catch(() => {}); // a refusal comes as 'denied'
  },

  /** roomChanged moves the subscription to the open room (from the one it was on). */
  roomChanged() {
    this.joined = null;
    if (this.stopped || !this.client) return; // start() joins the open room
    // A watched room stays joined: its badge still counts.
    if (this.subscribed && !this.watched.has(this.subscribed)) this.client.leave(this.subscribed);
    this.subscribed = '';
    this.update();
    this.joinOpen();
  },

  /**
   * watch joins the rooms of the sidebar besides the open one, so that
   * their messages keep the badges live: rooms is [{room, last_seq}], each
   * joined after its last_seq (what the list counted); rooms no longer
   * listed are left. Only over WebSocket, once it is live: over SSE each
   * room would be an event stream of its own (and a connection counted
   * against my limit); there the list's refresh keeps the badges.
   */
  watch(rooms) {
    const c = this.client;
    if (!c || this.stopped || c.transport !== 'ws' || c.state !== 'live') return;
    const want = new Map(rooms.slice(0, MAX_WATCHED).map((x) => [x.room, x.last_seq || 0]));
    for (const name of this.watched) {
      if (want.has(name)) continue;
      this.watched.delete(name);
      if (this.subscribed !== name) c.leave(name);
    }
    for (const [name, last] of want) {
      if (this.watched.has(name)) continue;
      this.watched.add(name);
      if (this.subscribed !== name) c.join(name, { after: last }).catch(() => {});
    }
  },

  /** read sends my read position in room (see reading.js). */
  read(room, seq) {
    if (!this.client) return Promise.reject(new ParleyError('closed', 'not connected'));
    return this.client.read(room, seq);
  },

  /** renew reopens the connection at once, so it runs on the session's new token (cookie). */
  renew() {
    if (!this.stopped) this.client?.reconnect({ now: true });
  },

  /** send hands a pending entry to the client: it resolves on ack, rejects with a ParleyError. */
  send(entry, options) {
    if (!this.client) return Promise.reject(new ParleyError('closed', 'not connected'));
    return this.client.send(entry.room, entry.text, { id: entry.id, replyTo: entry.reply_to || undefined, ...options });
  },

  /**
   * change edits, deletes or reacts to a message (lifecycle.js): op is
   * 'edit' (arg: the text), 'delete', or 'react' (arg: [emoji, on]); it
   * resolves on ack, rejects with a ParleyError. The item itself comes back
   * as a message and is folded into its target there.
   */
  change(op, room, target, arg, options) {
    const c = this.client;
    if (!c) return Promise.reject(new ParleyError('closed', 'not connected'));
    if (op === 'edit') return c.edit(room, target, arg, options);
    if (op === 'delete') return c.delete(room, target, options);
    return c.react(room, target, arg[0], arg[1], options);
  },

  async checkSession() {
    try {
      await api('GET', '/api/rooms?limit=1');
    } catch (err) {
      if (err.status === 401) this.on.signedOut();
    }
  },

  /** update takes the client's state, connecting until the open room is joined (or found denied). */
  update() {
    const c = this.client;
    if (this.stopped || !c || c.state === 'closed') return;
    let s = c.state;
    const r = state.room;
    if (s === 'live' && r && !r.denied && this.joined !== r) s = 'connecting';
    clearInterval(this.timers.tick);
    if (s === 'reconnecting') this.timers.tick = setInterval(() => this.render(), 1000);
    this.setState(s);
  },

  setState(s) {
    this.state = s;
    this.render();
  },

  render() {
    const retryAt = this.client?.retryAt || 0;
    renderConn({ state: this.state, mode: this.mode, retryAt, waiting: retryAt > Date.now() });
  },
};
