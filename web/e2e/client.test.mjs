// Browser test of the client library static/js/parley-client.js in real
// headless Chromium, against the real server, with no UI involved:
//
//   PARLEY_URL=http://127.0.0.1:8080 node web/e2e/client.test.mjs
//
// Pages of the server (each its own browser context, so its own cookie)
// sign in as a guest with fetch and then import the module. The checks:
// send and ack, the other client gets each message once and in seq order, a
// forced reconnect resumes with no gap and no duplicate, the reconnect policy
// (a lost live connection retried at once, failures backing off), a seq gap (a frame
// the page's WebSocket drops) is filled from history, the SSE transport, an
// error frame rejecting a send with its code, the fallback to SSE when
// WebSocket never opens, waiting while offline, the events the chat page
// runs on (disconnect, an error after the ack, membership, joined, left with
// its reason, a denied join); the message lifecycle (a reply, edits,
// reactions and deletes acked over WebSocket and by REST over SSE; fold and
// Timeline, by the rule of chat.Message.Fold); and that parley-client.d.ts declares every
// export of the module and type-checks a program using it (types/usage.ts,
// with the pinned typescript's tsc).

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BASE, WAIT, assert, check, expecting, finalChecks, launch, newPage, run, suffix, waitFor } from './harness.mjs';

const ROOM = `lib-${suffix}`;
const MODULE = '/static/js/parley-client.js';

/**
 * open signs a guest `name` in on a fresh page and makes a ParleyClient there
 * as window.pc. The page's WebSocket is wrapped: window.sockets holds every
 * one opened and window.inject(frame) hands the client a frame as if the
 * server had sent it on the last. With drop, it loses the first message
 * frame whose text is drop, as if the server had skipped it: a gap for the
 * client. With broken, every WebSocket fails before it opens (as behind a
 * proxy that breaks them). Every event of the client but message and state
 * is kept in window.events as {type, d}.
 */
async function open(name, transport, { drop, broken } = {}) {
  const page = await newPage(name);
  await page.goto(`${BASE}/`);
  await page.evaluate(
    async ({ name, transport, MODULE, drop, broken }) => {
      let dropped = false;
      window.sockets = [];
      window.WebSocket = class extends WebSocket {
        constructor(...args) {
          super(...args);
          window.sockets.push(this);
        }
        set onmessage(fn) {
          this.fn = fn;
          super.onmessage = (ev) => {
            if (drop && !dropped && JSON.parse(ev.data).text === drop) {
              dropped = window.dropped = true;
              return;
            }
            fn?.(ev);
          };
        }
      };
      if (broken) {
        // Fails before it opens, whatever the server would say.
        window.WebSocket = class BrokenWebSocket extends EventTarget {
          static CONNECTING = 0;
          static OPEN = 1;
          static CLOSING = 2;
          static CLOSED = 3;
          constructor(url) {
            super();
            this.url = url;
            this.readyState = 0;
            window.sockets.push(this);
            setTimeout(() => {
              this.readyState = 3;
              this.onerror?.(new Event('error'));
              this.onclose?.(new CloseEvent('close', { code: 1006, wasClean: false }));
            }, 50);
          }
          send() {
            throw new DOMException('not open', 'InvalidStateError');
          }
          close() {}
        };
      }
      window.inject = (frame) => window.sockets.at(-1).fn({ data: JSON.stringify(frame) });
      const res = await fetch('/api/session', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name }) });
      if (!res.ok) throw new Error(`sign-in: ${res.status}`);
      const { ParleyClient } = await import(MODULE);
      window.pc = new ParleyClient({ transport });
      window.got = [];
      window.states = [];
      window.events = [];
      window.pc.on('message', (m) => window.got.push(m));
      window.pc.on('state', (s) => window.states.push(s));
      for (const type of ['joined', 'left', 'membership', 'denied', 'disconnect', 'transport', 'error', 'read', 'receipt', 'notification']) {
        window.pc.on(type, (d) => window.events.push({ type, d: d instanceof Error ? { code: d.code, room: d.room, id: d.id, message: d.message } : d }));
      }
    },
    { name, transport, MODULE, drop, broken },
  );
  return page;
}

/** waitEvent waits until page's client has had an event of type for which pred holds; it returns its detail. */
async function waitEvent(page, type, pred, what) {
  return waitFor(async () => {
    const evs = await page.evaluate((type) => window.events.filter((e) => e.type === type).map((e) => e.d), type);
    return evs.find(pred) || null;
  }, what);
}

/** api calls the JSON API with page's cookie; it returns {status, body}. */
function api(page, method, path, body) {
  return page.evaluate(
    async ({ method, path, body }) => {
      const res = await fetch(path, { method, headers: { 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
      return { status: res.status, body: await res.json().catch(() => null) };
    },
    { method, path, body },
  );
}

const got = (page) => page.evaluate((ROOM) => window.got.filter((m) => m.room === ROOM), ROOM);

/** waitGot waits until page's client holds every id of ids; it returns its messages. */
async function waitGot(page, ids, who) {
  return waitFor(async () => {
    const ms = await got(page);
    const have = new Set(ms.map((m) => m.id));
    return ids.every((id) => have.has(id)) ? ms : null;
  }, `${who} gets ${ids.length} messages`);
}

/** assertOnceInOrder checks that ms hold no id twice and that their seqs run 1, 2, 3, ... with no gap. */
function assertOnceInOrder(ms, who) {
  const ids = new Set();
  for (const m of ms) {
    assert(!ids.has(m.id), `${who}: ${m.id} delivered twice`);
    ids.add(m.id);
  }
  ms.forEach((m, i) => assert(m.seq === i + 1, `${who}: message ${i} has seq ${m.seq}, want ${i + 1}`));
}

async function sendAll(page, texts) {
  return page.evaluate(({ ROOM, texts }) => Promise.all(texts.map((t) => window.pc.send(ROOM, t))), { ROOM, texts });
}

async function main() {
  await check('parley-client.d.ts declares every export of parley-client.js', async () => {
    const js = readFileSync(new URL('../../static/js/parley-client.js', import.meta.url), 'utf8');
    const dts = readFileSync(new URL('../../static/js/parley-client.d.ts', import.meta.url), 'utf8');
    const exported = [...js.matchAll(/^export (?:class|function|const) (\w+)/gm)].map((m) => m[1]);
    assert(exported.includes('ParleyClient'), 'ParleyClient is not exported');
    for (const name of exported) assert(new RegExp(`export (?:declare )?(?:class|function|const) ${name}\\b`).test(dts), `${name} not declared`);
    // Every public method of the class is declared on it.
    const body = js.slice(js.indexOf('export class ParleyClient'));
    const methods = [...body.matchAll(/^  (?:get )?([a-z]\w*)\(/gm)].map((m) => m[1]).filter((m) => m !== 'constructor');
    const decl = dts.slice(dts.indexOf('export class ParleyClient'));
    for (const m of methods) assert(new RegExp(`\\b${m}\\b`).test(decl), `ParleyClient.${m} not declared`);
    assert(methods.length >= 7, `only ${methods.length} methods found: ${methods}`);
  });

  await check('types/usage.ts type-checks against parley-client.d.ts (tsc --noEmit --strict)', async () => {
    const here = (p) => fileURLToPath(new URL(p, import.meta.url));
    assert(existsSync(here('node_modules/typescript/bin/tsc')), 'typescript is missing: npm ci --prefix web/e2e');
    try {
      execFileSync(
        process.execPath,
        [here('node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--target', 'es2022', '--module', 'es2022',
          '--moduleResolution', 'bundler', '--lib', 'es2022,dom', here('types/usage.ts')],
        { encoding: 'utf8', stdio: 'pipe' },
      );
    } catch (err) {
      assert(false, `tsc: ${(err.stdout || err.message).trim().split('\n').slice(0, 5).join(' | ')}`);
    }
  });

  await launch();
  const ann = await open(`lib-ann-${suffix}`, 'ws');
  const bob = await open(`lib-bob-${suffix}`, 'ws');

  await check('two clients join over WebSocket and go live', async () => {
    for (const p of [ann, bob]) await p.evaluate((ROOM) => window.pc.join(ROOM, { after: 0 }), ROOM);
    for (const p of [ann, bob]) assert((await p.evaluate(() => window.pc.state)) === 'live', 'not live after join');
  });

  const first = ['one', 'two', 'three'];
  let ids;
  await check('send resolves on ack; the other client gets each message once, in seq order', async () => {
    ids = await sendAll(ann, first);
    assert(ids.length === 3 && ids.every((id) => typeof id === 'string' && id), `acks: ${ids}`);
    const ms = await waitGot(bob, ids, 'bob');
    assertOnceInOrder(ms, 'bob');
    assert(ms.map((m) => m.text).join() === first.join(), `bob got ${ms.map((m) => m.text)}`);
    assert(ms.every((m) => m.user === `lib-ann-${suffix}`), 'the author is not ann');
    assertOnceInOrder(await waitGot(ann, ids, 'ann'), 'ann (its own messages)');
  });

  await check('read(): a read frame over WebSocket, PUT over SSE; every connection of mine gets the read event, the room a receipt', async () => {
    // bob's second client, on SSE, joined to the room: its stream carries the room's read events.
    await bob.evaluate(async (ROOM) => {
      const { ParleyClient } = await import('/static/js/parley-client.js');
      window.pc2 = new ParleyClient({ transport: 'sse' });
      window.reads2 = [];
      window.pc2.on('read', (d) => window.reads2.push(d));
      await window.pc2.join(ROOM, { after: 3 });
    }, ROOM);
    const bobUser = `lib-bob-${suffix}`;
    const readsOf = async (seq) => {
      const [ws, sse] = await bob.evaluate(() => [window.events.filter((e) => e.type === 'read').map((e) => e.d), window.reads2]);
      return ws.some((d) => d.room === ROOM && d.seq === seq) && sse.some((d) => d.room === ROOM && d.seq === seq);
    };
    await bob.evaluate((ROOM) => window.pc.read(ROOM, 2), ROOM);
    await waitFor(() => readsOf(2), 'both of bob\'s clients get read 2');
    await waitEvent(ann, 'receipt', (d) => d.room === ROOM && d.user === bobUser && d.seq === 2, 'ann gets the receipt of 2');
    const put = await bob.evaluate((ROOM) => window.pc2.read(ROOM, 3).then(() => 'ok', (e) => e.code), ROOM);
    assert(put === 'ok', `read over SSE: ${put}`);
    await waitFor(() => readsOf(3), 'both of bob\'s clients get read 3');
    await waitEvent(ann, 'receipt', (d) => d.room === ROOM && d.user === bobUser && d.seq === 3, 'ann gets the receipt of 3');
    // Backwards is no move: nothing is echoed.
    await bob.evaluate((ROOM) => window.pc.read(ROOM, 1), ROOM);
    await new Promise((r) => setTimeout(r, 1000));
    const back = await bob.evaluate(() => window.events.filter((e) => e.type === 'read' && e.d.seq === 1).length + window.reads2.filter((d) => d.seq === 1).length);
    assert(back === 0, 'a read moving back was echoed');
    const bad = await bob.evaluate((ROOM) => window.pc.read(ROOM, -1).then(() => 'ok', (e) => e.code), ROOM);
    assert(bad === 'bad_request', `read(-1): ${bad}`);
    await bob.evaluate(() => window.pc2.close());
  });

  await check('a notification frame is a notification event, once per id', async () => {
    const n = { type: 'notification', id: `n-${suffix}`, room: ROOM, seq: 2, from: 'x', text: 'hi @ann', kind: 'mention', ts: new Date().toISOString() };
    await ann.evaluate((n) => {
      window.inject(n);
      window.inject(n); // as two streams would each bring it
      window.inject({ ...n, id: `${n.id}-2` });
    }, n);
    const got = await waitFor(async () => {
      const ns = await ann.evaluate(() => window.events.filter((e) => e.type === 'notification').map((e) => e.d));
      return ns.length >= 2 && ns;
    }, 'the notification events');
    assert(got.length === 2 && got[0].id === n.id && got[1].id === `${n.id}-2`, JSON.stringify(got));
    assert(got[0].type === undefined && got[0].kind === 'mention' && got[0].seq === 2, JSON.stringify(got[0]));
    // The ids kept to drop repeats are the last 500: past them, the oldest is forgotten.
    const counts = await ann.evaluate((n) => {
      const count = () => window.events.filter((e) => e.type === 'notification').length;
      const before = count();
      for (let i = 0; i < 499; i++) window.inject({ ...n, id: `${n.id}-many-${i}` }); // 501 ids now
      const filled = count() - before;
      window.inject({ ...n, id: `${n.id}-2` }); // still kept: a repeat
      const kept = count() - before - filled;
      window.inject(n); // the oldest, forgotten: delivered again
      return { filled, kept, again: count() - before - filled - kept };
    }, n);
    assert(counts.filled === 499 && counts.kept === 0 && counts.again === 1, JSON.stringify(counts));
  });

  await check('a forced reconnect resumes with no gap and no duplicate', async () => {
    await bob.evaluate(() => {
      window.states.length = 0;
      window.pc.reconnect();
    });
    // Sent while bob is away (its reconnect waits a backoff first).
    const more = await sendAll(ann, ['four', 'five', 'six', 'seven']);
    ids = ids.concat(more);
    const ms = await waitGot(bob, ids, 'bob');
    await new Promise((r) => setTimeout(r, 500)); // room for a duplicate to show up
    assertOnceInOrder(await got(bob), 'bob');
    assert(ms.length === 7, `bob has ${ms.length} messages`);
    const states = await waitFor(async () => {
      const s = await bob.evaluate(() => window.states);
      return s.at(-1) === 'live' ? s : null;
    }, 'bob is live again');
    assert(states.includes('reconnecting'), `states: ${states}`);
    // And bob can send again on the new socket.
    const [id] = await sendAll(bob, ['back']);
    ids.push(id);
    assertOnceInOrder(await waitGot(ann, ids, 'ann'), 'ann');
  });

  await check('a gap in the seqs is filled from history before what follows is delivered', async () => {
    const gus = await open(`lib-gus-${suffix}`, 'ws', { drop: 'lost on the way' });
    await gus.evaluate((ROOM) => window.pc.join(ROOM, { after: 0 }), ROOM);
    await waitGot(gus, ids, 'gus');
    const more = await sendAll(ann, ['lost on the way', 'after the gap']);
    ids = ids.concat(more);
    await waitGot(gus, ids, 'gus');
    await new Promise((r) => setTimeout(r, 300));
    const ms = await got(gus);
    assert(await gus.evaluate(() => window.dropped), 'the frame was not dropped: no gap made');
    assertOnceInOrder(ms, 'gus');
    assert(ms.length === ids.length, `gus has ${ms.length}, want ${ids.length}`);
    assert(ms.at(-2).text === 'lost on the way', `the dropped message is ${JSON.stringify(ms.at(-2).text)}`);
    await gus.evaluate(() => window.pc.close());
  });

  await check('an error frame rejects the send with its code, key and params (text too long: bad_request)', async () => {
    const err = await ann.evaluate(
      (ROOM) =>
        window.pc.send(ROOM, 'x'.repeat(4001)).then(
          () => null,
          (e) => ({ code: e.code, message: e.message, name: e.name, key: e.key, params: e.params }),
        ),
      ROOM,
    );
    assert(err, 'a text of 4001 characters was acknowledged');
    assert(err.code === 'bad_request', `code ${err.code}: ${err.message}`);
    assert(err.key === 'text must be at most %d characters' && JSON.stringify(err.params) === '["4000"]',
      `key ${JSON.stringify(err.key)} params ${JSON.stringify(err.params)}`);
  });

  await check('a refused join rejects with the code of its error frame', async () => {
    const err = await ann.evaluate(() =>
      window.pc.join('Not A Room!', { after: 0 }).then(
        () => null,
        (e) => ({ code: e.code, room: e.room }),
      ),
    );
    assert(err && err.code === 'bad_request', `join answered ${JSON.stringify(err)}`);
    assert((await ann.evaluate((ROOM) => window.pc.last(ROOM), ROOM)) === ids.length, 'the joined room lost its place');
  });

  await check('the SSE transport: resume from a seq, send by POST, receive live, reconnect', async () => {
    const sse = await open(`lib-sue-${suffix}`, 'sse');
    await sse.evaluate((ROOM) => window.pc.join(ROOM, { after: 2 }), ROOM);
    assert((await sse.evaluate(() => window.pc.transport)) === 'sse', 'not on SSE');
    let ms = await waitGot(sse, ids.slice(2), 'sue');
    assert(ms[0].seq === 3 && ms.length === ids.length - 2, `sue resumed at seq ${ms[0].seq} with ${ms.length}`);
    const [id] = await sendAll(sse, ['over sse']);
    ids.push(id);
    assertOnceInOrder(await waitGot(bob, ids, 'bob'), 'bob');
    await sse.evaluate(() => window.pc.reconnect());
    const more = await sendAll(ann, ['eight', 'nine']);
    ids = ids.concat(more);
    ms = await waitGot(sse, ids.slice(2), 'sue');
    await new Promise((r) => setTimeout(r, 500));
    ms = await got(sse);
    assert(ms.length === ids.length - 2, `sue has ${ms.length}, want ${ids.length - 2}`);
    ms.forEach((m, i) => assert(m.seq === i + 3, `sue: message ${i} has seq ${m.seq}`));
    await sse.evaluate(() => window.pc.close());
  });

  await check('a client that connects before any join is live; one whose WebSocket never opens falls back to SSE by itself', async () => {
    const cal = await open(`lib-cal-${suffix}`, 'ws');
    await cal.evaluate(() => window.pc.connect());
    await waitFor(() => cal.evaluate(() => window.pc.state === 'live'), 'cal live with no room');
    await cal.evaluate(() => window.pc.close());
    const dee = await open(`lib-dee-${suffix}`, 'auto', { broken: true });
    // The probe (does the server answer HTTP?) is slow, and the join comes
    // while it is under way, as the chat page's does after its history.
    await dee.route('**/api/rooms?limit=1', async (route) => {
      await new Promise((r) => setTimeout(r, 500));
      await route.continue();
    });
    await dee.evaluate(() => window.pc.connect());
    await waitFor(() => dee.evaluate(() => window.sockets[0]?.readyState === 3), 'the WebSocket fails');
    await dee.evaluate((ROOM) => window.pc.join(ROOM, { after: 0 }), ROOM);
    assert((await dee.evaluate(() => window.pc.transport)) === 'sse', 'not on SSE');
    assert(await waitEvent(dee, 'transport', (t) => t === 'sse', 'the transport event'), 'no transport event');
    await waitFor(() => dee.evaluate(() => window.pc.state === 'live'), 'dee live over SSE');
    const tried = await dee.evaluate(() => window.sockets.length);
    assert(tried === 1, `${tried} WebSockets tried, want 1 (none while the probe is under way)`);
    const ms = await waitGot(dee, ids, 'dee');
    assertOnceInOrder(ms, 'dee');
    await dee.evaluate(() => window.pc.close());
  });

  await check('a lost connection says disconnect with its close code, and the client resumes', async () => {
    await ann.evaluate(() => window.sockets.at(-1).close(4001, 'test'));
    await waitEvent(ann, 'disconnect', (d) => d.code === 4001, 'a disconnect event');
    await waitFor(() => ann.evaluate(() => window.pc.state === 'live'), 'ann live again');
    // reconnect({now}) (the chat page's, for a renewed session) opens the new socket at once, not after a backoff.
    const opened = await ann.evaluate(() => {
      const n = window.sockets.length;
      window.pc.reconnect({ now: true });
      return window.sockets.length - n;
    });
    assert(opened === 1, `${opened} sockets opened by reconnect({now: true})`);
    await waitFor(() => ann.evaluate(() => window.pc.state === 'live'), 'ann live again after reconnect({now})');
    const [id] = await sendAll(ann, ['after a close']);
    ids.push(id);
    assertOnceInOrder(await waitGot(bob, ids, 'bob'), 'bob');
  });

  await check('reconnect policy: a lost live connection is retried at once (within 50 ms); a loss before live, and a socket that never opens, back off', async () => {
    // A scripted WebSocket in a page of its own, and the jitter fixed at its
    // middle, so that each retry's delay (retryAt) tells the policy.
    const page = await newPage(`lib-rp-${suffix}`);
    await page.goto(`${BASE}/`);
    const delays = await page.evaluate(async (MODULE) => {
      const made = [];
      window.WebSocket = class ScriptedWebSocket extends EventTarget {
        static CONNECTING = 0;
        static OPEN = 1;
        static CLOSING = 2;
        static CLOSED = 3;
        constructor(url) {
          super();
          this.url = url;
          this.readyState = 0;
          made.push(this);
        }
        send() {}
        close() {}
        open() {
          this.readyState = 1;
          this.onopen?.(new Event('open'));
        }
        joined() {
          this.onmessage?.({ data: JSON.stringify({ type: 'joined', room: 'r', last_seq: 0 }) });
        }
        lose(code) {
          this.readyState = 3;
          this.onclose?.(new CloseEvent('close', { code, wasClean: code !== 1006 }));
        }
      };
      Math.random = () => 0.5;
      const { ParleyClient } = await import(MODULE);
      const pc = new ParleyClient({ token: 'scripted', transport: 'ws' });
      const socket = async (n) => {
        while (made.length < n) await new Promise((r) => setTimeout(r, 5));
        return made[n - 1];
      };
      const delay = () => pc.retryAt - Date.now();
      const out = {};
      pc.join('r').catch(() => {});
      let ws = await socket(1);
      ws.open();
      ws.joined();
      out.live = pc.state;
      ws.lose(1006); // live, then lost: at once
      out.lost = delay();
      ws = await socket(2);
      ws.open();
      ws.lose(1012); // lost again before live: a backoff (attempt 0: 500 ms ceiling)
      out.beforeLive = delay();
      ws = await socket(3);
      ws.lose(1006); // never opened: a failed attempt, the backoff grows
      out.neverOpened = delay();
      ws = await socket(4);
      ws.open();
      ws.joined();
      ws.lose(1012); // live again, then lost: at once again
      out.again = delay();
      pc.close();
      return out;
    }, MODULE);
    await page.close();
    const d = delays;
    assert(d.live === 'live', `state ${d.live} after the scripted joined`);
    assert(d.lost >= 0 && d.lost <= 50 && d.again >= 0 && d.again <= 50, `a lost live connection waits ${d.lost} ms, then ${d.again} ms: want at most 50`);
    assert(d.beforeLive > 200 && d.beforeLive <= 250, `lost before live: waits ${d.beforeLive} ms, want the backoff's 250 (jitter at 0.5 of 500)`);
    assert(d.neverOpened > 450 && d.neverOpened <= 500, `never opened: waits ${d.neverOpened} ms, want the backoff's 500 (0.5 of 1000)`);
  });

  await check('offline: the client waits for the network, then comes back and resumes', async () => {
    await ann.context().setOffline(true);
    try {
      await waitFor(() => ann.evaluate(() => window.pc.state === 'offline'), 'ann offline');
      const n = await ann.evaluate(() => window.sockets.length);
      await new Promise((r) => setTimeout(r, 1000));
      assert((await ann.evaluate(() => window.sockets.length)) === n, 'sockets opened while offline');
    } finally {
      await ann.context().setOffline(false);
    }
    await waitFor(() => ann.evaluate(() => window.pc.state === 'live'), 'ann live again when online');
    const [id] = await sendAll(bob, ['while ann was offline, just about']);
    ids.push(id);
    assertOnceInOrder(await waitGot(ann, ids, 'ann'), 'ann');
  });

  await check('an error frame about a send already acknowledged is an error event naming the send', async () => {
    const [id] = await sendAll(ann, ['acked, then refused']);
    ids.push(id);
    await ann.evaluate(({ id, ROOM }) => window.inject({ type: 'error', code: 'forbidden', message: 'refused', id, room: ROOM }), { id, ROOM });
    const e = await waitEvent(ann, 'error', (e) => e.id === id, 'the error event');
    assert(e.code === 'forbidden' && e.room === ROOM, JSON.stringify(e));
  });

  const PRIV = `lib-priv-${suffix}`;
  const bobName = `lib-bob-${suffix}`;
  await check('membership: being added to a room is a membership event; its join is a joined event', async () => {
    let r = await api(ann, 'POST', '/api/rooms', { room: PRIV, kind: 'private' });
    assert(r.status === 201, `create: ${r.status} ${JSON.stringify(r.body)}`);
    r = await api(ann, 'POST', `/api/rooms/${PRIV}/members`, { user: bobName });
    assert(r.status < 300, `add: ${r.status} ${JSON.stringify(r.body)}`);
    const m = await waitEvent(bob, 'membership', (f) => f.room === PRIV, 'the membership event');
    assert(!('type' in m), `the event keeps the frame type: ${JSON.stringify(m)}`);
    await bob.evaluate((PRIV) => window.pc.join(PRIV, { after: 0 }), PRIV);
    const j = await waitEvent(bob, 'joined', (j) => j.room === PRIV, 'the joined event');
    assert(Number.isInteger(j.last_seq) && j.last_seq >= 2, `last_seq ${j.last_seq}`);
    // What the room holds for bob (from his being added on: history skips
    // what came before) is delivered as it is, no gap claimed.
    const ms = await waitFor(async () => {
      const ms = await bob.evaluate((PRIV) => window.got.filter((m) => m.room === PRIV), PRIV);
      return ms.some((m) => m.kind === 'member' && m.data?.target === bobName) ? ms : null;
    }, 'bob gets the item that added him');
    ms.forEach((m, i) => assert(i === 0 || m.seq === ms[i - 1].seq + 1, `seqs ${ms.map((m) => m.seq)}`));
    const errs = await bob.evaluate(() => window.events.filter((e) => e.type === 'error' || e.type === 'disconnect'));
    assert(errs.length === 0, `events ${JSON.stringify(errs)}`);
  });

  await check('removed: a left event with the reason; the room is dropped; joining again is denied', async () => {
    const r = await api(ann, 'DELETE', `/api/rooms/${PRIV}/members/${bobName}`);
    assert(r.status < 300, `remove: ${r.status} ${JSON.stringify(r.body)}`);
    const left = await waitEvent(bob, 'left', (l) => l.room === PRIV, 'the left event').catch(async (err) => {
      throw new Error(`${err.message}; events ${JSON.stringify(await bob.evaluate(() => window.events))}; got ${JSON.stringify(await bob.evaluate((PRIV) => window.got.filter((m) => m.room === PRIV), PRIV))}`);
    });
    assert(left.reason === 'removed', `reason ${JSON.stringify(left.reason)}`);
    assert((await bob.evaluate((PRIV) => window.pc.last(PRIV), PRIV)) === null, 'the room is still kept');
    const err = await bob.evaluate((PRIV) => window.pc.join(PRIV, { after: 0 }).then(() => null, (e) => ({ code: e.code, room: e.room })), PRIV);
    assert(err && err.code === 'not_found' && err.room === PRIV, `join answered ${JSON.stringify(err)}`);
    const d = await waitEvent(bob, 'denied', (d) => d.room === PRIV, 'the denied event');
    assert(d.code === 'not_found', JSON.stringify(d));
    await waitFor(() => bob.evaluate(() => window.pc.state === 'live'), 'bob live on the rooms left');
  });

  await check('fold: the rule of chat.Message.Fold, table by table; Timeline folds once, keeps items for messages not held', async () => {
    const bad = await ann.evaluate(async () => {
      const { fold, Timeline, isLifecycle, targetOf } = await import('/static/js/parley-client.js');
      const m = { seq: 1, user: 'a', text: 'hi', ts: 't1' };
      const it = (seq, kind, data, extra = {}) => ({ seq, kind, user: 'b', ts: `t${seq}`, text: `x${seq}`, data, ...extra });
      const cases = [
        ['an edit sets text and edited_ts', m, [it(2, 'edit', { target: 1 })], { text: 'x2', edited_ts: 't2' }],
        ['a reaction adds its user, in order', m, [it(2, 'reaction', { target: 1, emoji: '👍', on: true }), it(3, 'reaction', { target: 1, emoji: '👍' }, { user: 'a' })], { text: 'hi', reactions: { '👍': ['b', 'a'] } }],
        ['twice on is once', m, [it(2, 'reaction', { target: 1, emoji: '👍', on: true }), it(3, 'reaction', { target: 1, emoji: '👍', on: true })], { text: 'hi', reactions: { '👍': ['b'] } }],
        ['off removes; the last off empties reactions', m, [it(2, 'reaction', { target: 1, emoji: '👍', on: true }), it(3, 'reaction', { target: 1, emoji: '👍', on: false })], { text: 'hi' }],
        ['off of none is nothing', m, [it(2, 'reaction', { target: 1, emoji: '👍', on: false })], { text: 'hi' }],
        ['a delete erases text, edited_ts and reactions', m, [it(2, 'edit', { target: 1 }), it(3, 'reaction', { target: 1, emoji: '🎉' }), it(4, 'delete', { target: 1 })], { text: '', deleted: true }],
        ['a deleted message takes nothing more', { ...m, text: '', deleted: true }, [it(2, 'edit', { target: 1 }), it(3, 'reaction', { target: 1, emoji: '🎉' })], { text: '', deleted: true }],
        ['an item without data is nothing', m, [{ seq: 2, kind: 'edit', text: 'no', user: 'a', ts: 't2' }], { text: 'hi' }],
      ];
      const pick = (x) => JSON.stringify({ text: x.text, edited_ts: x.edited_ts, deleted: x.deleted, reactions: x.reactions });
      const out = [];
      for (const [name, start, items, want] of cases) {
        const got = items.reduce(fold, start);
        if (pick(got) !== pick(want)) out.push(`${name}: ${pick(got)}, want ${pick(want)}`);
        if (JSON.stringify(start) !== JSON.stringify(cases.find((c) => c[0] === name)[1])) out.push(`${name}: fold changed its argument`);
      }
      if (!isLifecycle({ kind: 'reaction' }) || isLifecycle({ kind: 'member' }) || targetOf({ kind: 'member', data: { target: 'bob' } }) !== 0) out.push('isLifecycle/targetOf');
      // Timeline: history folded up to 5 skips items up to 5; a kept item newer than that is folded in on add.
      const tl = new Timeline();
      tl.apply(it(4, 'edit', { target: 1 }));
      tl.apply(it(6, 'reaction', { target: 1, emoji: '👍' }));
      const added = tl.add({ ...m, text: 'x4', edited_ts: 't4' }, { upTo: 5 });
      if (pick(added) !== pick({ text: 'x4', edited_ts: 't4', reactions: { '👍': ['b'] } })) out.push(`Timeline.add: ${pick(added)}`);
      if (tl.apply(it(6, 'reaction', { target: 1, emoji: '👍' })) !== null) out.push('Timeline.apply folded an item twice');
      if (tl.apply(it(3, 'edit', { target: 1 })) !== null) out.push('Timeline.apply folded an item older than history');
      if (tl.apply(it(7, 'edit', { target: 1 }))?.text !== 'x7') out.push('Timeline.apply: a newer edit');
      return out;
    });
    assert(bad.length === 0, bad.join('; '));
  });

  const LIFE = `lib-life-${suffix}`;
  await check('reply, edit, react, delete over WebSocket: acked; the items reach the other client and fold as history says', async () => {
    const target = await ann.evaluate(async (LIFE) => {
      await window.pc.send(LIFE, 'a life');
      await window.pc.join(LIFE, { after: 0 });
      return null;
    }, LIFE);
    assert(target === null, 'setup');
    await bob.evaluate((LIFE) => window.pc.join(LIFE, { after: 0 }), LIFE);
    const lifeGot = (page) => page.evaluate((LIFE) => window.got.filter((m) => m.room === LIFE), LIFE);
    const first = await waitFor(async () => (await lifeGot(bob)).find((m) => m.text === 'a life'), 'bob gets the message');
    const seq = first.seq;
    const acks = await bob.evaluate(
      async ({ LIFE, seq }) => [await window.pc.send(LIFE, 'a reply', { replyTo: seq }), await window.pc.react(LIFE, seq, '👍'), await window.pc.react(LIFE, seq, '🎉'), await window.pc.react(LIFE, seq, '👍', false)],
      { LIFE, seq },
    );
    const edit = await ann.evaluate(({ LIFE, seq }) => window.pc.edit(LIFE, seq, 'a life, edited'), { LIFE, seq });
    const ids = [...acks, edit];
    assert(ids.every((id) => typeof id === 'string' && id), `acks ${ids}`);
    const ms = await waitFor(async () => {
      const ms = await lifeGot(ann);
      return ids.every((id) => ms.some((m) => m.id === id)) && ms;
    }, 'ann gets the reply and every item');
    const reply = ms.find((m) => m.id === acks[0]);
    assert(reply.reply_to === seq && !reply.kind, `the reply: ${JSON.stringify(reply)}`);
    const kinds = ids.slice(1).map((id) => ms.find((m) => m.id === id)).map((m) => `${m.kind}:${m.data?.target}:${m.data?.emoji ?? ''}:${m.data?.on ?? ''}`);
    assert(kinds.join() === `reaction:${seq}:👍:true,reaction:${seq}:🎉:true,reaction:${seq}:👍:false,edit:${seq}::`, `items ${kinds}`);
    // What ann's client folds is what history says (once the stores fold it).
    const folded = await ann.evaluate(
      async ({ LIFE, seq }) => {
        const { Timeline, isLifecycle } = await import('/static/js/parley-client.js');
        const tl = new Timeline();
        for (const m of window.got.filter((m) => m.room === LIFE)) (isLifecycle(m) ? tl.apply(m) : tl.add(m));
        const h = await (await fetch(`/api/rooms/${LIFE}/messages?limit=100`)).json();
        const pick = (x) => JSON.stringify({ text: x.text, edited: !!x.edited_ts, deleted: !!x.deleted, reactions: x.reactions });
        return { mine: pick(tl.get(seq)), history: pick(h.messages.find((m) => m.seq === seq)) };
      },
      { LIFE, seq },
    );
    assert(folded.mine === JSON.stringify({ text: 'a life, edited', edited: true, deleted: false, reactions: { '🎉': [`lib-bob-${suffix}`] } }), `folded ${folded.mine}`);
    // Refused by the persist stage after the ack: an error event naming it.
    // The refusal travels the pipeline, the ack does not: it may come
    // first, and then it rejects the edit itself.
    const refused = await bob.evaluate(
      ({ LIFE, seq }) => window.pc.edit(LIFE, seq, 'not mine').then((id) => ({ id }), (e) => ({ code: e.code })),
      { LIFE, seq },
    );
    if (refused.code) {
      assert(refused.code === 'forbidden', `the edit of another author rejected with ${refused.code}`);
    } else {
      const err = await waitEvent(bob, 'error', (e) => e.id === refused.id, 'the refusal of an edit of another author');
      assert(err.code === 'forbidden', JSON.stringify(err));
    }
    const del = await ann.evaluate(({ LIFE, seq }) => window.pc.delete(LIFE, seq), { LIFE, seq });
    await waitFor(async () => (await lifeGot(bob)).some((m) => m.id === del && m.kind === 'delete'), 'bob gets the delete');
    const bad = await bob.evaluate(({ LIFE }) => window.pc.edit(LIFE, 0, 'x').then(() => 'sent', (e) => e.code), { LIFE });
    assert(bad === 'bad_request', `an edit of seq 0: ${bad}`);
    assert(folded.mine === folded.history, `folded ${folded.mine}, history ${folded.history}`);
  });

  await check('edit, react and delete over SSE: the REST routes, answered once stored; a refusal rejects with its code', async () => {
    const name = `lib-sal-${suffix}`;
    const sse = await open(name, 'sse');
    const why = 'an edit of a deleted message, refused on purpose';
    const r = await expecting([{ page: name, re: /status of 409/, why }], () => sse.evaluate(async (LIFE) => {
      await window.pc.join(LIFE, { after: 0 });
      const sent = await window.pc.send(LIFE, 'by sse');
      const wait = (id) =>
        new Promise((res) => {
          const t = setInterval(() => {
            const m = window.got.find((m) => m.id === id);
            if (m) res(m, clearInterval(t));
          }, 50);
        });
      const m = await wait(sent);
      const reply = await wait(await window.pc.send(LIFE, 'a reply by sse', { replyTo: m.seq }));
      const ids = [await window.pc.edit(LIFE, m.seq, 'by sse, edited'), await window.pc.react(LIFE, m.seq, '👀'), await window.pc.delete(LIFE, m.seq)];
      const items = await Promise.all(ids.map(wait));
      const refused = await window.pc.edit(LIFE, m.seq, 'again').then(() => 'sent', (e) => e.code);
      window.pc.close();
      return { reply_to: reply.reply_to, seq: m.seq, kinds: items.map((x) => `${x.kind}:${x.data.target}`), refused };
    }, LIFE));
    assert(r.reply_to === r.seq, `reply_to ${r.reply_to}`);
    assert(r.kinds.join() === `edit:${r.seq},reaction:${r.seq},delete:${r.seq}`, `items ${r.kinds}`);
    assert(r.refused === 'conflict', `an edit of a deleted message: ${r.refused}`);
  });

  await check('close settles the client: state closed, a later send rejects with code closed', async () => {
    const r = await bob.evaluate((ROOM) => {
      window.pc.close();
      return window.pc.send(ROOM, 'late').then(
        () => 'sent',
        (e) => `${window.pc.state} ${e.code}`,
      );
    }, ROOM);
    assert(r === 'closed closed', r);
  });

  await finalChecks(4);
}

run(main, 3 * 60_000 + WAIT);
