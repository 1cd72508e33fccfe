// Browser test of the client library static/js/parley-client.js in real
// headless Chromium, against the real server, with no UI involved:
//
//   PARLEY_URL=http://127.0.0.1:8080 node web/e2e/client.test.mjs
//
// Two pages of the server (each its own browser context, so its own
// cookie) sign in as a guest with fetch and then import the module. The
// checks: send and ack, the other client gets each message once and in seq
// order, a forced reconnect resumes with no gap and no duplicate, a seq gap
// (a frame the page's WebSocket drops) is filled from history, the SSE
// transport, an error frame rejecting a send with its code; and that
// parley-client.d.ts declares every export of the module and type-checks a
// program using it (types/usage.ts, with the pinned typescript's tsc).

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BASE, WAIT, assert, check, finalChecks, launch, newPage, run, suffix, waitFor } from './harness.mjs';

const ROOM = `lib-${suffix}`;
const MODULE = '/static/js/parley-client.js';

/**
 * open signs a guest `name` in on a fresh page and makes a ParleyClient there
 * as window.pc. With drop, the page's WebSocket loses the first message frame
 * whose text is drop, as if the server had skipped it: a gap for the client.
 */
async function open(name, transport, { drop } = {}) {
  const page = await newPage(name);
  await page.goto(`${BASE}/`);
  await page.evaluate(
    async ({ name, transport, MODULE, drop }) => {
      if (drop) {
        let dropped = false;
        window.WebSocket = class extends WebSocket {
          set onmessage(fn) {
            super.onmessage = (ev) => {
              if (!dropped && JSON.parse(ev.data).text === drop) {
                dropped = window.dropped = true;
                return;
              }
              fn(ev);
            };
          }
        };
      }
      const res = await fetch('/api/session', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name }) });
      if (!res.ok) throw new Error(`sign-in: ${res.status}`);
      const { ParleyClient } = await import(MODULE);
      window.pc = new ParleyClient({ transport });
      window.got = [];
      window.states = [];
      window.pc.on('message', (m) => window.got.push(m));
      window.pc.on('state', (s) => window.states.push(s));
    },
    { name, transport, MODULE, drop },
  );
  return page;
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

  await check('an error frame rejects the send with its code (text too long: bad_request)', async () => {
    const err = await ann.evaluate(
      (ROOM) =>
        window.pc.send(ROOM, 'x'.repeat(4001)).then(
          () => null,
          (e) => ({ code: e.code, message: e.message, name: e.name }),
        ),
      ROOM,
    );
    assert(err, 'a text of 4001 characters was acknowledged');
    assert(err.code === 'bad_request', `code ${err.code}: ${err.message}`);
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
