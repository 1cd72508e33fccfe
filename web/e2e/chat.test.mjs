// Browser test of Parley's web UI in real headless Chromium.
//
//   PARLEY_URL=http://127.0.0.1:8080 node web/e2e/chat.test.mjs
//
// Env and output as harness.mjs says.
//
// Two users in two browser contexts: alice on the default transport
// (WebSocket) and bob on ?transport=sse (EventSource + POST), in a fresh room.
// Every wait is bounded; on a failure the pages are screenshotted.
//
// The browsers speak PARLEY_LANG (harness.mjs): the page must come in that
// language, and every string checked is that language's, from its catalogue.
// One page of its own switches to the other language and back.
//
// No CSP violation, console error or warning may be seen (harness.mjs). The
// only exceptions are the ones a check provokes on purpose, each declared
// with expecting() in that check:
//   - the bad sign-in name: the 400 answer of POST /api/session;
//   - the two retry checks: the POSTs the test aborts (net::ERR_CONNECTION_RESET).
// The CSP self-test provokes violations too, in a page of its own whose
// records are checked there and kept out of the shared list.

import {
  BASE,
  LANG,
  LANGS,
  T,
  WAIT,
  assert,
  assertOrdered,
  check,
  contextOptions,
  cspProblem,
  expecting,
  finalChecks,
  joinRoom,
  launch,
  messages,
  pages,
  send,
  signIn,
  suffix,
  tid,
  waitFor,
  waitForText,
  run,
  waitLive,
  watch,
} from './harness.mjs';

const ROOM = `e2e-${suffix}`;
const PAGED_ROOM = `e2e-${suffix}-paged`;
const QUIET_ROOM = `e2e-${suffix}-quiet`; // joined, never written to

async function main() {
  const browser = await launch();
  const ctxA = await browser.newContext(contextOptions());
  const ctxB = await browser.newContext(contextOptions());
  const alice = (pages.alice = await ctxA.newPage());
  const bob = (pages.bob = await ctxB.newPage());
  for (const [name, page] of Object.entries(pages)) {
    page.setDefaultTimeout(WAIT);
    await watch(name, page);
  }

  // Record every state each message of alice's goes through, so that a
  // pending state that resolves quickly is still seen.
  await alice.addInitScript(() => {
    window.__states = {};
    const note = (li) => {
      if (!li.dataset || li.dataset.testid !== 'message') return;
      const seen = (window.__states[li.dataset.id] ||= []);
      if (seen.at(-1) !== li.dataset.state) seen.push(li.dataset.state);
    };
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === 'attributes') note(r.target);
        for (const n of r.addedNodes || []) if (n.nodeType === 1) note(n);
      }
    }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });
  });

  const textA1 = `hello from alice ${suffix}`;
  const textB1 = `hi alice, bob here ${suffix}`;
  const textHTML = `<b>bold</b> & <i>not italic</i> ${suffix}`;

  let signinResponse;
  // The server's refusal in the page's language: the error's key and
  // params (the name) through the catalogue's server.<key>, not the
  // English message (which the en run shows, as its translation is it).
  await check("sign-in page refuses a bad name with the server's reason, in the page's language", async () => {
    signinResponse = await alice.goto(`${BASE}/`);
    await expecting([{ page: 'alice', re: /status of 400\b.*\/api\/session/, why: 'the refused names' }], async () => {
      for (const [name, key, params, english] of [
        ['no spaces allowed!', 'name may contain only letters, digits, _ - and .', [], 'name may contain only letters, digits, _ - and .'],
        ['Admin', 'name %q is reserved', ['"Admin"'], 'name "Admin" is reserved'],
      ]) {
        const answer = alice.waitForResponse((r) => r.url().endsWith('/api/session') && r.request().method() === 'POST');
        await alice.fill(tid('signin-name'), name);
        await alice.click(tid('signin-button'));
        const body = await (await answer).json();
        assert(body.error.key === key && JSON.stringify(body.error.params ?? []) === JSON.stringify(params),
          `${name}: the answer's error is ${JSON.stringify(body.error)}`);
        const want = T(`server.${key}`, params);
        const text = await waitFor(async () => {
          const e = await alice.$(`${tid('signin-error')}:not([hidden])`);
          const s = e && (await e.textContent()).trim();
          return s === want ? s : null;
        }, `${name}: the sign-in error says ${JSON.stringify(want)}`);
        if (LANG !== 'en') assert(text !== english, `${name}: the error is the English message`);
        else assert(text === english, `${name}: the English error ${JSON.stringify(text)} is not the message`);
        assert(await alice.$(tid('user-name')) === null, `signed in as ${name}`);
      }
    });
  });

  await check("the page carries the security headers (CSP with frame-ancestors 'none')", async () => {
    assert(signinResponse, 'no response for the sign-in page');
    const h = signinResponse.headers();
    const p = cspProblem(h);
    assert(!p, p);
    assert(h['x-content-type-options'] === 'nosniff', `X-Content-Type-Options: ${h['x-content-type-options']}`);
    assert(h['referrer-policy'] === 'no-referrer', `Referrer-Policy: ${h['referrer-policy']}`);
    assert(/^deny$/i.test(h['x-frame-options'] || ''), `X-Frame-Options: ${h['x-frame-options']}`);
    // The script and the style sheet are files of this origin, so 'self' covers them.
    // The one exception is the message catalogue: JSON data, which no browser runs.
    const scripts = await alice.$$eval('script:not([type="application/json"])', (ss) => ss.map((x) => ({ src: x.src, inline: !x.src && x.textContent.trim() !== '' })));
    assert(scripts.length > 0 && scripts.every((x) => !x.inline && new URL(x.src).origin === new URL(BASE).origin), `scripts: ${JSON.stringify(scripts)}`);
    const data = await alice.$$eval('script[type="application/json"]', (ss) => ss.map((x) => x.id));
    assert(JSON.stringify(data) === '["i18n"]', `data blocks: ${JSON.stringify(data)}`);
  });

  await check('CSP is enforced, and a violation would be caught', async () => {
    // A page of its own (its records go to `seen`, not the shared list) that
    // breaks the policy on purpose three ways: a style attribute, an inline
    // <script>, an inline event handler.
    const ctxP = await browser.newContext(contextOptions());
    const seen = [];
    try {
      const probe = await ctxP.newPage();
      probe.setDefaultTimeout(WAIT);
      await watch('probe', probe, seen);
      await probe.goto(`${BASE}/`);
      const r = await probe.evaluate(() => {
        const d = document.createElement('div');
        d.setAttribute('style', 'color: red');
        document.body.append(d);
        const s = document.createElement('script');
        s.textContent = 'window.__inlineRan = true';
        document.head.append(s);
        // (eval is not tried here: code the test evaluates through DevTools
        // is exempt from the policy's eval rule.)
        const b = document.createElement('button');
        b.setAttribute('onclick', 'window.__handlerRan = true');
        document.body.append(b);
        b.click();
        return { styled: getComputedStyle(d).color === 'rgb(255, 0, 0)', inlineRan: window.__inlineRan === true, handlerRan: window.__handlerRan === true };
      });
      assert(!r.styled, 'an inline style attribute applied');
      assert(!r.inlineRan, 'an inline <script> ran');
      assert(!r.handlerRan, 'an inline event handler ran');
      const violations = () => probe.evaluate(() => window.__cspViolations.map((v) => v.directive));
      const directives = await waitFor(async () => {
        const d = await violations();
        return ['style-src-attr', 'script-src-elem', 'script-src-attr'].every((x) => d.includes(x)) && d;
      }, 'the three violations recorded');
      await waitFor(() => seen.filter((x) => x.includes('CSP violation')).length >= 3, `the violations reported to the test (${JSON.stringify(directives)})`);
    } finally {
      await ctxP.close().catch(() => {});
    }
  });

  await check(`the sign-in page speaks the browser's language (${LANG})`, async () => {
    const lang = await alice.getAttribute('html', 'lang');
    assert(lang === LANG, `<html lang="${lang}">`);
    const button = (await alice.textContent(tid('signin-button'))).trim();
    assert(button === T('signin.guest.button'), `the sign-in button says ${JSON.stringify(button)}`);
    const tagline = (await alice.textContent('.tagline')).trim();
    assert(tagline === T('signin.tagline'), `the tagline says ${JSON.stringify(tagline)}`);
  });

  await check('the language switcher changes the language, and the choice is remembered', async () => {
    const other = LANGS.find((l) => l !== LANG);
    const ctxL = await browser.newContext(contextOptions());
    try {
      const page = (pages.lang = await ctxL.newPage());
      page.setDefaultTimeout(WAIT);
      await watch('lang', page);
      await page.goto(`${BASE}/`);
      assert((await page.inputValue(tid('lang-switch'))) === LANG, 'the switcher does not show the page language');
      await Promise.all([page.waitForNavigation(), page.selectOption(tid('lang-switch'), other)]);
      await page.waitForSelector(tid('signin-button'));
      assert((await page.getAttribute('html', 'lang')) === other, `after switching, <html lang="${await page.getAttribute('html', 'lang')}">`);
      const button = (await page.textContent(tid('signin-button'))).trim();
      assert(button === T('signin.guest.button', {}, other), `after switching, the button says ${JSON.stringify(button)}`);
      const cookie = (await ctxL.cookies(BASE)).find((c) => c.name === 'parley_lang');
      assert(cookie && cookie.value === other && cookie.path === '/' && cookie.sameSite === 'Lax', `cookie ${JSON.stringify(cookie)}`);
      const days = (cookie.expires * 1000 - Date.now()) / 86_400_000;
      assert(days > 360 && days < 370, `the cookie lives ${days} days, want a year`);
      // Remembered: a new page of the same browser, whose Accept-Language still asks for LANG.
      const again = (pages.lang2 = await ctxL.newPage());
      await watch('lang2', again);
      await again.goto(`${BASE}/`);
      assert((await again.getAttribute('html', 'lang')) === other, 'the choice was not remembered');
      await again.close();
      // And back.
      await Promise.all([page.waitForNavigation(), page.selectOption(tid('lang-switch'), LANG)]);
      await page.waitForSelector(tid('signin-button'));
      assert((await page.getAttribute('html', 'lang')) === LANG, 'switching back did not work');
    } finally {
      delete pages.lang;
      delete pages.lang2;
      await ctxL.close().catch(() => {});
    }
  });

  await check('alice signs in (default transport)', async () => {
    await signIn(alice, 'alice');
  });

  await check('bob signs in with ?transport=sse', async () => {
    await bob.goto(`${BASE}/?transport=sse`);
    await signIn(bob, 'bob');
  });

  await check('both join a fresh room', async () => {
    await joinRoom(alice, ROOM);
    await joinRoom(bob, ROOM);
    await bob.waitForSelector(tid('empty'), { state: 'visible' }); // "No messages yet"
  });

  await check('indicator shows WebSocket for alice and SSE for bob', async () => {
    const a = await waitLive(alice, 'ws');
    const b = await waitLive(bob, 'sse');
    assert(/websocket/i.test(a.text) && a.text === T('conn.live', { transport: 'WebSocket' }), `alice's indicator says ${JSON.stringify(a.text)}`);
    assert(/sse/i.test(b.text) && b.text === T('conn.live', { transport: 'SSE' }), `bob's indicator says ${JSON.stringify(b.text)}`);
  });

  await check('alice sends over WebSocket, bob sees it', async () => {
    await send(alice, textA1);
    const m = await waitForText(bob, textA1);
    assert(m.user === 'alice', `shown as from ${m.user}`);
  });

  await check("alice's pending message resolves to a sequenced one", async () => {
    const m = await waitForText(alice, textA1);
    assert(Number.isInteger(m.seq) && m.seq >= 1, `seq ${m.seq}`);
    const states = await alice.evaluate((id) => window.__states[id], m.id);
    assert(states && states[0] === 'pending' && states.at(-1) === 'delivered', `states went ${JSON.stringify(states)}`);
    const title = await alice.getAttribute(`${tid('message')}[data-id="${m.id}"]`, 'title');
    assert(title && title.includes(`#${m.seq}`), `tooltip ${JSON.stringify(title)} lacks the seq`);
    const copies = (await messages(alice)).filter((x) => x.text === textA1);
    assert(copies.length === 1, `${copies.length} copies shown`);
    // The time is the reader's: formatted by Intl in the page's language.
    const time = await alice.$eval(`${tid('message')}[data-id="${m.id}"] time`, (e) => ({
      shown: e.textContent,
      want: new Intl.DateTimeFormat(document.documentElement.lang, { hour: '2-digit', minute: '2-digit' }).format(new Date(e.dateTime)),
      lang: document.documentElement.lang,
    }));
    assert(time.lang === LANG && time.shown === time.want, `time ${JSON.stringify(time)}`);
  });

  await check('bob sends over SSE + POST, alice sees it', async () => {
    await send(bob, textB1, { enter: true });
    const m = await waitForText(alice, textB1);
    assert(m.user === 'bob', `shown as from ${m.user}`);
    const own = await waitForText(bob, textB1);
    assert(own.seq === m.seq, `bob sees seq ${own.seq}, alice ${m.seq}`);
  });

  await check('HTML in a message is shown as text', async () => {
    await send(alice, textHTML);
    for (const page of [alice, bob]) {
      await waitForText(page, textHTML);
      const tags = await page.$$eval(`${tid('message-list')} b, ${tid('message-list')} i`, (n) => n.length);
      assert(tags === 0, `${tags} <b>/<i> elements inside the message list`);
    }
  });

  const aborted = [{ page: 'bob', re: /ERR_CONNECTION_RESET.*\/api\/rooms\/[^/]+\/messages/, why: 'a POST the test aborts' }];

  await check('each message is laid out in isolation (RTL text, a 300-character word)', async () => {
    const text = `שלום עולם 2024 مرحبا بالعالم 123 ${'W'.repeat(300)} ${suffix}`;
    await send(alice, text);
    for (const [who, page] of [
      ['alice', alice],
      ['bob', bob],
    ]) {
      const m = await waitForText(page, text);
      const box = await page.$eval(`${tid('message')}[data-id="${m.id}"]`, (li) => {
        const t = li.querySelector('[data-testid="message-text"]');
        const u = li.querySelector('[data-testid="message-user"]');
        const list = document.querySelector('[data-testid="message-list"]');
        const pane = document.querySelector('[data-testid="message-pane"]');
        const ts = getComputedStyle(t);
        const tr = t.getBoundingClientRect();
        const lr = list.getBoundingClientRect();
        return {
          textDir: t.getAttribute('dir'),
          textBidi: ts.unicodeBidi,
          wrap: ts.overflowWrap,
          overflow: [ts.overflowX, ts.overflowY],
          lineHeight: ts.lineHeight,
          userDir: u.getAttribute('dir'),
          userBidi: getComputedStyle(u).unicodeBidi,
          textChildren: [...t.childNodes].map((n) => n.nodeType),
          text: [t.scrollWidth, t.clientWidth, tr.height],
          inList: tr.left >= lr.left - 0.5 && tr.right <= lr.right + 0.5,
          list: [list.scrollWidth, list.clientWidth],
          pane: [pane.scrollWidth, pane.clientWidth],
        };
      });
      const s = `${who}: ${JSON.stringify(box)}`;
      assert(box.textDir === 'auto', `message text dir=${box.textDir}, want auto; ${s}`);
      assert(['isolate', 'plaintext'].includes(box.textBidi), `message text unicode-bidi ${box.textBidi}; ${s}`);
      assert(box.userDir === 'auto', `author dir=${box.userDir}, want auto; ${s}`);
      assert(['isolate', 'plaintext'].includes(box.userBidi), `author unicode-bidi ${box.userBidi}; ${s}`);
      assert(box.wrap === 'anywhere', `overflow-wrap ${box.wrap}; ${s}`);
      assert(box.overflow.every((o) => o === 'hidden' || o === 'clip'), `text overflow ${box.overflow}; ${s}`);
      assert(box.lineHeight !== 'normal', `line-height is normal; ${s}`);
      assert(box.textChildren.every((t) => t === 3), `message text has element children; ${s}`);
      // The long word wraps (not merely clipped), and nothing widens the list.
      assert(box.text[0] <= box.text[1] + 1, `text scrolls sideways; ${s}`);
      assert(box.inList, `text box sticks out of the list; ${s}`);
      assert(box.list[0] <= box.list[1], `message list overflows its width; ${s}`);
      assert(box.pane[0] <= box.pane[1], `message pane overflows its width; ${s}`);
    }
  });

  await check('a failed POST is retried with the same id and shown once', () => expecting(aborted, async () => {
    const ids = [];
    let first = true;
    await bob.route('**/api/rooms/*/messages', async (route) => {
      const req = route.request();
      if (req.method() !== 'POST') return route.continue();
      ids.push(JSON.parse(req.postData() || '{}').id);
      if (first) {
        first = false;
        return route.abort('connectionreset');
      }
      return route.continue();
    });
    const text = `retried ${suffix}`;
    try {
      await send(bob, text);
      await waitForText(bob, text);
      await waitForText(alice, text);
    } finally {
      await bob.unroute('**/api/rooms/*/messages');
    }
    assert(ids.length >= 2, `${ids.length} POSTs`);
    assert(ids.every((id) => id && id === ids[0]), `ids differ: ${JSON.stringify(ids)}`);
    for (const page of [alice, bob]) {
      const n = (await messages(page)).filter((m) => m.text === text).length;
      assert(n === 1, `${n} copies shown`);
    }
  }));

  await check('a send that fails every attempt is shown failed; Retry sends it once, same id', () => expecting(aborted, async () => {
    const ids = [];
    let refuse = true;
    await bob.route('**/api/rooms/*/messages', async (route) => {
      const req = route.request();
      if (req.method() !== 'POST') return route.continue();
      ids.push(JSON.parse(req.postData() || '{}').id);
      return refuse ? route.abort('connectionreset') : route.continue();
    });
    const text = `gave up ${suffix}`;
    try {
      await send(bob, text);
      // Three attempts (backoff 1 s, 2 s), then the budget is spent.
      await waitForText(bob, text, { state: 'failed' }, 20_000);
      const failedAfter = ids.length;
      assert(failedAfter === 3, `${failedAfter} attempts before giving up, want 3`);
      const shown = await bob.textContent(`${tid('message')}[data-state="failed"] ${tid('message-error')}`);
      assert(shown.startsWith(T('message.notSentTitle')), `failed message says ${JSON.stringify(shown)}`);
      refuse = false;
      await bob.click(`${tid('message')}[data-state="failed"] ${tid('message-retry')}`);
      await waitForText(bob, text);
      await waitForText(alice, text);
      assert(ids.length === failedAfter + 1, `${ids.length - failedAfter} POSTs after Retry, want 1`);
    } finally {
      await bob.unroute('**/api/rooms/*/messages');
    }
    assert(ids.every((id) => id && id === ids[0]), `ids differ: ${JSON.stringify(ids)}`);
    for (const page of [alice, bob]) {
      const n = (await messages(page)).filter((m) => m.text === text).length;
      assert(n === 1, `${n} copies shown`);
    }
  }));

  await check('both show the same messages in seq order', async () => {
    const a = await assertOrdered(alice, 'alice');
    const b = await assertOrdered(bob, 'bob');
    assert(a.length >= 4, `only ${a.length} messages`);
    assert(JSON.stringify(a) === JSON.stringify(b), `alice ${a} vs bob ${b}`);
  });

  await check('reload keeps the user signed in, the room, and its history', async () => {
    for (const [page, name, transport] of [
      [alice, 'alice', 'ws'],
      [bob, 'bob', 'sse'],
    ]) {
      await page.reload();
      await page.waitForSelector(tid('user-name'));
      assert((await page.textContent(tid('user-name'))).trim() === name, `${name}: signed out by reload`);
      // The script fills the title in (the server does not know the
      // address's #room=), so it may come a moment after the page.
      await waitFor(async () => (await page.textContent(tid('room-title'))).includes(ROOM), `${name}: room lost on reload`);
      for (const text of [textA1, textB1, textHTML]) await waitForText(page, text);
      await waitLive(page, transport);
    }
  });

  await check('live messages flow again after reload', async () => {
    const text = `after reload ${suffix}`;
    await send(bob, text);
    await waitForText(alice, text);
  });

  // carol's WebSocket runs through a proxy in the test, which can hold back
  // message frames (to make a gap) and close the socket as a restarting
  // server does (1012).
  const ctxC = await browser.newContext(contextOptions());
  const sockets = [];
  let dropMessages = false;
  await ctxC.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    sockets.push(ws);
    server.onMessage((data) => {
      if (dropMessages && JSON.parse(data).type === 'message') return;
      ws.send(data);
    });
    ws.onMessage((data) => server.send(data));
  });
  const carol = (pages.carol = await ctxC.newPage());
  carol.setDefaultTimeout(WAIT);
  await watch('carol', carol);

  await check('a missed message is fetched from history before the next one', async () => {
    await carol.goto(`${BASE}/#room=${ROOM}`);
    await signIn(carol, 'carol');
    await waitLive(carol, 'ws');
    await waitForText(carol, textA1);
    dropMessages = true;
    const missed = `missed by carol ${suffix}`;
    await send(bob, missed);
    await waitForText(bob, missed);
    dropMessages = false;
    const next = `after the gap ${suffix}`;
    await send(bob, next);
    await waitForText(carol, next);
    const shown = await messages(carol);
    const i = shown.findIndex((m) => m.text === missed);
    const j = shown.findIndex((m) => m.text === next);
    assert(i >= 0 && i < j, `missed message at ${i}, next at ${j}`);
    await assertOrdered(carol, 'carol');
  });

  await check('close 1012 (server restart): reconnects promptly and replays', async () => {
    dropMessages = true; // carol misses this one on the old socket...
    const during = `during restart ${suffix}`;
    await send(bob, during);
    await waitForText(bob, during);
    const before = sockets.length;
    sockets.at(-1).close({ code: 1012, reason: 'service restart' });
    dropMessages = false; // ...and gets it from the new socket's join replay
    await waitFor(async () => sockets.length > before, 'a new WebSocket', 3_000);
    await waitLive(carol, 'ws');
    await waitForText(carol, during);
    await assertOrdered(carol, 'carol');
  });

  // dave's browser cannot open WebSockets at all (as behind a proxy that
  // breaks them): every socket fails before it opens.
  const ctxD = await browser.newContext(contextOptions());
  await ctxD.addInitScript(() => {
    window.WebSocket = class BrokenWebSocket extends EventTarget {
      static CONNECTING = 0;
      static OPEN = 1;
      static CLOSING = 2;
      static CLOSED = 3;
      constructor(url) {
        super();
        this.url = url;
        this.readyState = 0;
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
  });
  const dave = (pages.dave = await ctxD.newPage());
  dave.setDefaultTimeout(WAIT);
  await watch('dave', dave);

  await check('WebSocket blocked: falls back to SSE by itself', async () => {
    await dave.goto(`${BASE}/#room=${ROOM}`);
    await signIn(dave, 'dave');
    const s = await waitLive(dave, 'sse');
    assert(/sse/i.test(s.text), `indicator says ${JSON.stringify(s.text)}`);
    await waitForText(dave, textA1);
    const text = `dave over the fallback ${suffix}`;
    await send(dave, text);
    await waitForText(dave, text);
    await waitForText(alice, text);
  });

  await check('scrolling up loads older pages', async () => {
    // 60 messages through the API with alice's cookie, then open the room.
    // The server limits a user's sending rate: on 429, wait and send the
    // same id again (the contract makes that idempotent).
    for (let i = 1; i <= 60; i++) {
      for (let attempt = 1; ; attempt++) {
        const res = await ctxA.request.post(`${BASE}/api/rooms/${PAGED_ROOM}/messages`, {
          data: { id: `paged-${suffix}-${i}`, text: `paged message ${i}` },
          timeout: WAIT,
        });
        if (res.status() === 429 && attempt < 5) {
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        assert(res.status() === 202, `POST #${i}: ${res.status()} ${await res.text()}`);
        break;
      }
    }
    // 202 means durably accepted, not yet stored: wait until history has all
    // 60, so the first page is exactly the latest 50.
    await waitFor(async () => {
      const res = await ctxA.request.get(`${BASE}/api/rooms/${PAGED_ROOM}/messages?limit=1`, { timeout: WAIT });
      return (await res.json()).messages?.[0]?.seq === 60;
    }, 'history to hold all 60 messages');
    await alice.evaluate((room) => {
      location.hash = `room=${room}`;
    }, PAGED_ROOM);
    await waitForText(alice, 'paged message 60');
    const first = (await messages(alice)).filter((m) => m.seq !== null);
    assert(first.length === 50, `first page shows ${first.length} messages, want 50: ${first.map((m) => `${m.seq}:${m.text}`)}`);
    await alice.$eval(tid('message-pane'), (p) => {
      p.scrollTop = 0;
    });
    await waitForText(alice, 'paged message 1');
    const all = await assertOrdered(alice, 'alice');
    assert(all.length === 60, `${all.length} messages after paging, want 60`);
    assert(await alice.isHidden(tid('load-older')), 'load-older still offered at the start of history');
    assert(await alice.isVisible(tid('history-start')), 'the start of history is not marked');
  });

  await check('the open room is listed though the server has no message in it; More rooms… pages on', async () => {
    // The server lists a room only once it has a message: QUIET_ROOM is not
    // on any page of GET /api/rooms however long alice stays in it.
    const listed = async () => {
      const names = [];
      let cursor = null;
      for (let i = 0; i < 20; i++) {
        const q = cursor ? `limit=200&cursor=${encodeURIComponent(cursor)}` : 'limit=200';
        const res = await ctxA.request.get(`${BASE}/api/rooms?${q}`, { timeout: WAIT });
        assert(res.status() === 200, `GET /api/rooms: ${res.status()}`);
        const body = await res.json();
        names.push(...body.rooms.map((x) => x.room));
        if (!(cursor = body.next_cursor)) return names;
      }
      throw new Error('GET /api/rooms: more than 20 pages');
    };
    // The page asks for pages of 100; the test serves them a room at a time,
    // so that the two rooms with messages (ROOM, PAGED_ROOM) take two pages.
    const asked = [];
    const isRooms = (url) => url.pathname === '/api/rooms';
    await alice.route(isRooms, (route) => {
      const u = new URL(route.request().url());
      asked.push(Object.fromEntries(u.searchParams));
      u.searchParams.set('limit', '1');
      return route.continue({ url: u.toString() });
    });
    const item = (room) => `${tid('room-list')} ${tid('room-item')}[data-room="${room}"]`;
    try {
      await joinRoom(alice, QUIET_ROOM);
      await alice.reload(); // start from the first page only
      await alice.waitForSelector(item(QUIET_ROOM));
      await alice.waitForSelector(item(ROOM));
      await alice.waitForSelector(`${tid('rooms-more')}:not([hidden])`);
      const names = await listed();
      assert(names.includes(ROOM) && names.includes(PAGED_ROOM), `server lists ${JSON.stringify(names)}`);
      assert(!names.includes(QUIET_ROOM), `server lists the quiet room: ${JSON.stringify(names)}`);
      const cur = await alice.$eval(item(QUIET_ROOM), (li) => ({ current: li.classList.contains('current'), aria: li.querySelector('a')?.getAttribute('aria-current') }));
      assert(cur.current && cur.aria === 'page', `the open room is not marked current: ${JSON.stringify(cur)}`);
      assert((await alice.$(item(PAGED_ROOM))) === null, 'the second page is shown before More rooms… was pressed');
      // Press More until the server has no more; PAGED_ROOM comes on the way.
      for (let i = 0; i < 5 && (await alice.isVisible(tid('rooms-more'))); i++) {
        const n = asked.length;
        await alice.click(tid('rooms-more'));
        await waitFor(async () => asked.length > n && !(await alice.isDisabled(tid('rooms-more'))), 'the next page');
      }
      assert(await alice.isHidden(tid('rooms-more')), `${T('chat.rooms.more')} still offered after the last page`);
      await alice.waitForSelector(item(PAGED_ROOM));
      const shown = await alice.$$eval(`${tid('room-list')} ${tid('room-item')}`, (lis) => lis.map((li) => li.dataset.room));
      for (const r of [ROOM, PAGED_ROOM, QUIET_ROOM]) assert(shown.includes(r), `${r} not in the list ${JSON.stringify(shown)}`);
      assert(await alice.$eval(item(QUIET_ROOM), (li) => li.classList.contains('current')), 'the open room lost its highlight');
      const pagedAsks = asked.filter((q) => q.cursor);
      assert(pagedAsks.length >= 1, `no page was asked with a cursor: ${JSON.stringify(asked)}`);
      // Session probes may ask for one room; the list itself asks for 100.
      const listAsks = asked.filter((q) => q.limit !== '1');
      assert(listAsks.length >= 2 && listAsks.every((q) => q.limit === '100'), `pages asked: ${JSON.stringify(asked)}`);
    } finally {
      await alice.unroute(isRooms);
    }
  });

  await check('sign out returns to the sign-in form', async () => {
    await dave.click(tid('signout-button'));
    await dave.waitForSelector(tid('signin-form'));
    await dave.reload();
    await dave.waitForSelector(tid('signin-form'));
    assert((await dave.$(tid('user-name'))) === null, 'still signed in after reload');
  });

  await finalChecks(10);
}

await run(main, 240_000);
