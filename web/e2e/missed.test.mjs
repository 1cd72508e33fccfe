// Browser test of "What you missed" (PROTOCOL.md v2) in real headless
// Chromium: badges, the new-messages line, read positions across tabs, the
// bell and receipts.
//
//   PARLEY_URL=http://127.0.0.1:8080 node web/e2e/missed.test.mjs
//
// Env and output as harness.mjs says (run from Go by TestBrowserMissed,
// with a server whose PARLEY_NOTIFY_DELAY is 1 s).
//
// alice has two tabs (two pages of one browser context) in a room of her
// own; bob writes in a room they share. Both her tabs get the unread badge,
// then the mention badge, live; she opens the room in one tab, the
// new-messages line is above bob's first message, and the badge clears in
// the other tab too (the server's read frame). bob mentions her and writes
// a page and more after it: the bell of both tabs counts it, the panel
// lists it, opening it clears the other tab's count, and a click opens the
// room at that message (history around it loaded), shown and marked. In a
// direct room, bob's message badges like a mention, and "Seen" comes under
// alice's message once bob has read it.
//
// The service worker (/sw.js) is registered, shows a push delivered through
// Chromium's DevTools protocol, and a click on it takes a tab to the
// message; turning browser push on is offered, and refused by this
// Chromium (no push service for a Playwright context): the refusal is said.
//
// No CSP violation, console error or warning may be seen (harness.mjs),
// except: when the server has no Web Push, the 404 of GET /api/push/vapid
// when the bell's panel first opens; Chromium's own words on refusing the
// push subscription.

import { BASE, T, WAIT, assert, check, expecting, finalChecks, launch, newPage, run, signIn, suffix, tid, waitFor, waitLive } from './harness.mjs';

const HOME = `home-${suffix}`;
const MISS = `miss-${suffix}`;
const LIVE_WAIT = 5_000; // a badge that is live comes well before the list's refresh (every 10 s)
const NOTE_WAIT = 15_000; // PARLEY_NOTIFY_DELAY (1 s) and the notifier's round

const FILLERS = 49; // rooms of alice's besides HOME and MISS: 51 in all, one more than a tab joins (MAX_WATCHED)
const filler = (i) => `zz-${suffix}-${String(i).padStart(2, '0')}`;

const item = (list, room) => `${tid(list)} [data-room="${room}"]`;

/** badges is what room's entry in a sidebar list shows: {unread, mention} texts, '' when hidden. */
const badges = (page, room, list = 'room-list') =>
  page.$eval(item(list, room), (li) => {
    const text = (sel) => {
      const e = li.querySelector(sel);
      return e && !e.hidden ? e.textContent : '';
    };
    return { unread: text('[data-testid="room-badge"]'), mention: text('[data-testid="room-mention"]') };
  });

async function waitBadges(page, room, want, who, { list, timeout = LIVE_WAIT } = {}) {
  return waitFor(
    async () => {
      const b = await badges(page, room, list);
      return b.unread === want.unread && b.mention === want.mention && b;
    },
    `${who}: badges of ${room} ${JSON.stringify(want)}`,
    timeout,
  );
}

/** post sends text to room as the page's user, through the API (the page's cookie). */
async function post(page, room, text) {
  const res = await page.context().request.post(`${BASE}/api/rooms/${room}/messages`, { data: { id: `m-${suffix}-${Math.random().toString(16).slice(2)}`, text }, timeout: WAIT });
  assert(res.ok(), `POST ${room}/messages: ${res.status()} ${await res.text()}`);
}

async function apiCall(page, method, path, data) {
  const res = await page.context().request.fetch(`${BASE}${path}`, { method, data, timeout: WAIT });
  assert(res.ok(), `${method} ${path}: ${res.status()} ${await res.text()}`);
  return res.status() === 204 ? null : res.json();
}

/** seqOf is the seq of the message with text in room, as history has it. */
async function seqOf(page, room, text) {
  return waitFor(async () => {
    const h = await apiCall(page, 'GET', `/api/rooms/${room}/messages?limit=200`);
    return h.messages.find((m) => m.text === text)?.seq;
  }, `seq of ${JSON.stringify(text)}`);
}

async function openHash(page, room) {
  await page.evaluate((r) => {
    location.hash = `room=${r}`;
  }, room);
  await waitFor(async () => (await page.textContent(tid('room-title'))).includes(room), `room title shows ${room}`);
}

const bellCount = (page) => page.$eval(tid('bell-count'), (e) => (e.hidden ? '' : e.textContent));

async function main() {
  await launch();
  const a1 = await newPage('alice1');
  const sent1 = []; // the frames alice1's WebSockets sent: {at, f}
  a1.on('websocket', (ws) =>
    ws.on('framesent', (ev) => {
      try {
        sent1.push({ at: Date.now(), f: JSON.parse(ev.payload) });
      } catch {
        /* not JSON */
      }
    }),
  );
  const bob = await newPage('bob');
  let a2 = null; // alice's second tab, in a1's context

  await check('alice (two tabs) and bob sign in; bob has a room alice joins, alice one of her own', async () => {
    await a1.goto(`${BASE}/`);
    await signIn(a1, 'alice');
    await bob.goto(`${BASE}/`);
    await signIn(bob, 'bob');
    await apiCall(a1, 'POST', '/api/rooms', { room: HOME, kind: 'public' });
    await apiCall(bob, 'POST', '/api/rooms', { room: MISS, kind: 'public' });
    await apiCall(a1, 'POST', `/api/rooms/${MISS}/members`, { user: 'alice' });
    for (let i = 0; i < FILLERS; i++) await apiCall(a1, 'POST', '/api/rooms', { room: filler(i), kind: 'public' });
    await openHash(a1, HOME);
    a2 = await newPage('alice2', { context: a1.context() });
    await a2.goto(`${BASE}/#room=${HOME}`);
    for (const [page, who] of [
      [a1, 'alice1'],
      [a2, 'alice2'],
    ]) {
      await waitLive(page, 'ws');
      await page.waitForSelector(item('room-list', MISS), { timeout: WAIT });
      await waitBadges(page, MISS, { unread: '', mention: '' }, who);
    }
  });

  await check('a tab joins the rooms of its list for their badges, 50 at most (the first by name)', async () => {
    const joined = () => {
      const rooms = new Set();
      for (const { f } of sent1) {
        if (f.type === 'join') rooms.add(f.room);
        else if (f.type === 'leave') rooms.delete(f.room);
      }
      return rooms;
    };
    await waitFor(() => joined().size >= 50, 'alice1 joins 50 rooms', WAIT);
    await new Promise((r) => setTimeout(r, 500));
    const rooms = joined();
    assert(rooms.size === 50, `alice1 is joined to ${rooms.size} rooms`);
    assert(rooms.has(HOME) && rooms.has(MISS), 'the open room or the shared one is not joined');
    assert(!rooms.has(filler(FILLERS - 1)), 'the 51st room by name is joined');
  });

  await check("bob's messages: the unread badge in both of alice's tabs, live", async () => {
    // The tabs join the rooms of their list once live (their first list
    // read after that): give that a moment.
    await new Promise((r) => setTimeout(r, 1000));
    await post(bob, MISS, `one ${suffix}`);
    await post(bob, MISS, `two ${suffix}`);
    await waitBadges(a1, MISS, { unread: '2', mention: '' }, 'alice1');
    await waitBadges(a2, MISS, { unread: '2', mention: '' }, 'alice2');
  });

  await check('a mention of alice: the mention badge (distinct) in both tabs', async () => {
    await post(bob, MISS, `three @alice ${suffix}`);
    for (const [page, who] of [
      [a1, 'alice1'],
      [a2, 'alice2'],
    ]) {
      await waitBadges(page, MISS, { unread: '', mention: '1' }, who);
      const li = await page.$eval(item('room-list', MISS), (x) => ({ unread: x.dataset.unread, mentions: x.dataset.mentions }));
      assert(li.unread === '3' && li.mentions === '1', `${who}: counts ${JSON.stringify(li)}`);
    }
  });

  await check('alice opens the room in tab 1: the new-messages line above the first unread; the badge clears in tab 2 too', async () => {
    await a1.click(`${item('room-list', MISS)} a`);
    await a1.waitForSelector(`${tid('new-messages')}`, { timeout: WAIT });
    const next = await a1.$eval(tid('new-messages'), (line) => line.nextElementSibling?.querySelector('[data-testid="message-text"]')?.textContent);
    assert(next === `one ${suffix}`, `the line is above ${JSON.stringify(next)}`);
    assert((await a1.textContent(tid('new-messages'))).includes(T('rooms.newMessages')), 'the line does not say so');
    await waitBadges(a1, MISS, { unread: '', mention: '' }, 'alice1');
    await waitBadges(a2, MISS, { unread: '', mention: '' }, 'alice2');
    // The server agrees: the room object says nothing unread.
    await waitFor(async () => {
      const o = await apiCall(a1, 'GET', `/api/rooms/${MISS}`);
      return o.unread === 0 && o.mentions === 0 && o.read_seq === o.last_seq;
    }, 'the room object has no unread');
  });

  await check('reading in the open room: read positions go as messages come, at most one a second, and tab 2 stays clear', async () => {
    const from = sent1.length;
    const t0 = Date.now();
    for (let i = 0; i < 10; i++) await post(bob, MISS, `burst ${i} ${suffix}`);
    await waitFor(async () => (await a1.$$eval(tid('message-text'), (xs) => xs.map((x) => x.textContent))).includes(`burst 9 ${suffix}`), 'alice1 shows them');
    await waitFor(async () => {
      const o = await apiCall(a1, 'GET', `/api/rooms/${MISS}`);
      return o.unread === 0 && o.read_seq === o.last_seq;
    }, 'the read position followed');
    const reads = sent1.slice(from).filter((x) => x.f.type === 'read' && x.f.room === MISS);
    const took = Date.now() - t0;
    assert(reads.length >= 1 && reads.length <= Math.ceil(took / 1000) + 1, `${reads.length} read frames in ${took} ms`);
    for (let i = 1; i < reads.length; i++) {
      assert(reads[i].f.seq > reads[i - 1].f.seq, `read ${reads[i].f.seq} after ${reads[i - 1].f.seq}`);
      assert(reads[i].at - reads[i - 1].at >= 900, `two read frames ${reads[i].at - reads[i - 1].at} ms apart`);
    }
    await new Promise((r) => setTimeout(r, 1500)); // time for a badge, were one to come
    const b = await badges(a2, MISS);
    assert(!b.unread && !b.mention, `alice2 shows ${JSON.stringify(b)}`);
  });

  await check('501 unread (more than the tab keeps one by one): counted all the same, shown as 99+', async () => {
    await openHash(a1, HOME);
    const texts = Array.from({ length: 501 }, (_, i) => `many ${i} ${suffix}`);
    // In parallel, to come well within the list's refresh (which would count them too).
    for (let i = 0; i < texts.length; i += 100) await Promise.all(texts.slice(i, i + 100).map((t) => post(bob, MISS, t)));
    for (const [page, who] of [
      [a1, 'alice1'],
      [a2, 'alice2'],
    ]) {
      await waitBadges(page, MISS, { unread: '99+', mention: '' }, who);
      // Over Kafka (PARLEY_TEST_MODE=distributed) they take a while to come.
      await waitFor(async () => (await page.$eval(item('room-list', MISS), (x) => x.dataset.unread)) === '501', `${who} counts 501`, 20_000);
    }
  });

  let target = 0;
  const noteText = `look here @alice ${suffix}`;
  const noVapid = [{ page: 'alice2', re: /status of 404\b.*\/api\/push\/vapid/, why: 'no Web Push on this server' }];
  await check("the bell's panel, opened, says everything so far is seen, in the other tab too", () =>
    expecting(noVapid, async () => {
      // The mention above may have been notified before alice read it
      // (PARLEY_NOTIFY_DELAY is 1 s here): past that delay, whatever came is seen.
      await new Promise((r) => setTimeout(r, 2000));
      await a2.click(tid('bell'));
      await a2.waitForSelector(`${tid('bell-panel')}:popover-open`);
      await waitFor(async () => (await bellCount(a2)) === '', 'alice2 bell count cleared');
      await waitFor(async () => (await bellCount(a1)) === '', 'alice1 bell count cleared (the other tab)');
      // Let the push check of the first opening answer within the expectation.
      await new Promise((r) => setTimeout(r, 500));
      await a2.keyboard.press('Escape');
      await a2.waitForSelector(`${tid('bell-panel')}:not(:popover-open)`, { state: 'attached' });
    }),
  );

  await check('a mention alice does not read: the bell counts it in both tabs', async () => {
    await openHash(a1, HOME);
    await post(bob, MISS, noteText);
    target = await seqOf(bob, MISS, noteText);
    // A page and more after it: opening at it must load history around it.
    for (let i = 0; i < 60; i++) await post(bob, MISS, `after ${i} ${suffix}`);
    await waitFor(async () => (await bellCount(a1)) === '1', 'alice1 bell counts 1', NOTE_WAIT);
    await waitFor(async () => (await bellCount(a2)) === '1', 'alice2 bell counts 1', NOTE_WAIT);
  });

  await check("the bell's panel lists it, the latest first; opening it clears the count in the other tab too", async () => {
    await a2.click(tid('bell'));
    await a2.waitForSelector(`${tid('bell-panel')}:popover-open`);
    const entries = await a2.$$eval(tid('bell-item'), (xs) =>
      xs.map((x) => ({ id: x.dataset.id, seq: Number(x.dataset.seq), room: x.dataset.room, kind: x.dataset.kind, text: x.textContent })),
    );
    const e = entries[0];
    assert(e && e.seq === target && e.room === MISS && e.kind === 'mention' && e.text.includes(noteText), `the first entry is ${JSON.stringify(e)}`);
    assert(e.text.includes(T('chat.bell.mention', { user: 'bob', room: MISS })), `the entry does not say who and where: ${e.text}`);
    assert(new Set(entries.map((x) => x.id)).size === entries.length, `an entry twice: ${JSON.stringify(entries)}`);
    await waitFor(async () => (await bellCount(a2)) === '', 'alice2 bell count cleared');
    await waitFor(async () => (await bellCount(a1)) === '', 'alice1 bell count cleared (the other tab)');
  });

  await check('a click on it opens the room at that message: loaded around it, shown and marked', async () => {
    await a2.click(`${tid('bell-item')}[data-seq="${target}"][data-room="${MISS}"]`);
    await waitFor(async () => (await a2.textContent(tid('room-title'))).includes(MISS), 'alice2 opened the room');
    const sel = `${tid('message')}[data-seq="${target}"]`;
    await a2.waitForSelector(`${sel}.target`, { timeout: WAIT });
    await waitFor(
      () =>
        a2.$eval(sel, (li) => {
          const pane = document.querySelector('[data-testid="message-pane"]').getBoundingClientRect();
          const box = li.getBoundingClientRect();
          return box.top >= pane.top - 1 && box.bottom <= pane.bottom + 1;
        }),
      'the message is in view',
    );
    assert((await a2.$eval(sel, (li) => li.querySelector('[data-testid="message-text"]').textContent)) === noteText, 'another message is marked');
    // The page up to it, the page after it, and (the live join's replay) the rest.
    const seqs = await waitFor(async () => {
      const xs = await a2.$$eval(`${tid('message')}[data-seq]`, (ys) => ys.map((y) => Number(y.dataset.seq)));
      return xs.includes(target - 1) && xs.includes(target + 60) && xs;
    }, 'the messages around it');
    for (let i = 1; i < seqs.length; i++) assert(seqs[i] > seqs[i - 1], `seq ${seqs[i]} after ${seqs[i - 1]}`);
    assert(new URL(a2.url()).hash === `#room=${MISS}`, `the address says ${new URL(a2.url()).hash}`);
  });

  await check('a push click lands on /?room=&seq=: the page opens the room at that message', async () => {
    const a3 = await newPage('alice3', { context: a1.context() });
    await a3.goto(`${BASE}/?room=${MISS}&seq=${target}`);
    await a3.waitForSelector(`${tid('message')}[data-seq="${target}"].target`, { timeout: WAIT });
    const u = new URL(a3.url());
    assert(u.search === '' && u.hash === `#room=${MISS}`, `the address is ${u.search}${u.hash}`);
    await a3.close();
  });

  await check('51 notifications: a new tab lists the latest 50, and the older one on "Older notifications"', async () => {
    await openHash(a2, HOME);
    const texts = Array.from({ length: 51 }, (_, i) => `page @alice ${i} ${suffix}`);
    await Promise.all(texts.map((t) => post(bob, MISS, t)));
    await waitFor(async () => (await bellCount(a1)) === '51', 'alice1 bell counts 51', NOTE_WAIT);
    let all = [];
    for (let before = null; ; ) {
      const p = await apiCall(a1, 'GET', `/api/notifications?limit=200${before ? `&before=${encodeURIComponent(before)}` : ''}`);
      all = [...p.notifications, ...all];
      if (!p.next_cursor) break;
      before = p.next_cursor;
    }
    const a3 = await newPage('alice3', { context: a1.context() });
    await expecting([{ page: 'alice3', re: /status of 404\b.*\/api\/push\/vapid/, why: 'no Web Push on this server' }], async () => {
      await a3.goto(`${BASE}/#room=${HOME}`);
      await waitLive(a3, 'ws');
      await a3.click(tid('bell'));
      await a3.waitForSelector(`${tid('bell-panel')}:popover-open`);
      const ids = () => a3.$$eval(tid('bell-item'), (xs) => xs.map((x) => x.dataset.id));
      await waitFor(async () => (await ids()).length === 50, 'the latest 50 listed');
      assert(await a3.isVisible(tid('bell-more')), 'no "Older notifications"');
      await a3.click(tid('bell-more'));
      await waitFor(async () => (await ids()).length === all.length, `all ${all.length} listed`);
      const shown = await ids();
      assert(new Set(shown).size === shown.length, 'one listed twice');
      assert(shown.join() === all.map((x) => x.id).reverse().join(), 'not the latest first');
      assert(await a3.isHidden(tid('bell-more')), '"Older notifications" after the oldest');
      await new Promise((r) => setTimeout(r, 500));
    });
    await a3.close();
  });

  let dm = '';
  await check("a direct message from bob: alice's badge looks like a mention (direct rooms are joined first)", async () => {
    await openHash(a1, HOME);
    dm = (await apiCall(bob, 'POST', '/api/dms', { user: 'alice' })).room;
    await a1.waitForSelector(item('dm-list', dm), { timeout: WAIT });
    await new Promise((r) => setTimeout(r, 1000)); // the tab joins it once listed
    await post(bob, dm, `psst ${suffix}`);
    await waitBadges(a1, dm, { unread: '', mention: '1' }, 'alice1', { list: 'dm-list' });
  });

  await check('receipts: "Seen" under alice\'s message once bob has read it', async () => {
    await a1.click(`${item('dm-list', dm)} a`);
    await waitFor(async () => (await a1.textContent(tid('room-title'))).includes('bob'), 'alice1 opened the direct room');
    // bob's message counts as read by him: alice's are all after it.
    await a1.fill(tid('message-input'), `pong ${suffix}`);
    await a1.click(tid('send-button'));
    const mine = `${tid('message')}[data-user="alice"]`;
    await a1.waitForSelector(`${mine}[data-seq]`, { timeout: WAIT });
    assert((await a1.$(tid('message-seen'))) === null, 'seen before bob opened it');
    await bob.goto(`${BASE}/#room=${dm}`);
    await waitLive(bob, 'ws');
    await a1.waitForSelector(`${mine} ${tid('message-seen')}`, { timeout: WAIT });
    assert((await a1.textContent(tid('message-seen'))) === T('message.seen', { user: 'bob' }), 'the receipt says otherwise');
    assert((await a1.$$(tid('message-seen'))).length === 1, 'more than one "Seen"');
  });

  await check('a tab on SSE reads too (PUT .../read): the badge clears in the WebSocket tab', async () => {
    await openHash(a1, HOME);
    await post(bob, dm, `again ${suffix}`);
    await waitBadges(a1, dm, { unread: '', mention: '1' }, 'alice1', { list: 'dm-list' });
    const a4 = await newPage('alice4', { context: a1.context() });
    await a4.goto(`${BASE}/?transport=sse#room=${dm}`);
    await waitLive(a4, 'sse');
    await waitBadges(a1, dm, { unread: '', mention: '' }, 'alice1', { list: 'dm-list' });
    const o = await apiCall(a1, 'GET', `/api/rooms/${dm}`);
    assert(o.unread === 0 && o.read_seq === o.last_seq, `the room object says ${JSON.stringify(o)}`);
    await a4.close();
  });

  await check('the service worker (/sw.js, scope /) shows a push: its title, the text as body, the id as tag, room and seq as data', async () => {
    const ctx = a1.context();
    await ctx.grantPermissions(['notifications'], { origin: BASE });
    const scope = await a1.evaluate(async () => {
      const reg = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
      await navigator.serviceWorker.ready;
      return reg.scope;
    });
    assert(scope === `${BASE}/`, `scope ${scope}`);
    // A push as the push service would deliver it (Chromium's DevTools protocol).
    const cdp = await ctx.newCDPSession(a1);
    const regs = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (ev) => regs.push(...ev.registrations));
    await cdp.send('ServiceWorker.enable');
    const reg = await waitFor(() => regs.find((r) => r.scopeURL === `${BASE}/` && !r.isDeleted), 'the registration');
    const payload = { id: `n-push-${suffix}`, room: MISS, seq: target, from: 'bob', text: noteText, kind: 'mention', ts: new Date().toISOString(), title: `bob in #${MISS}` };
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: BASE, registrationId: reg.registrationId, data: JSON.stringify(payload) });
    const shown = await waitFor(async () => {
      const list = await a1.evaluate(async () =>
        (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data })),
      );
      return list.length > 0 && list;
    }, 'the notification shown');
    assert(shown.length === 1, `${shown.length} shown`);
    const n = shown[0];
    assert(n.title === payload.title && n.body === noteText && n.tag === payload.id, JSON.stringify(n));
    assert(n.data?.room === MISS && n.data?.seq === target, `data ${JSON.stringify(n.data)}`);
    await cdp.detach();
  });

  await check('a click on the push: a tab open already goes to the room at that message', async () => {
    await openHash(a1, HOME);
    await openHash(a2, HOME);
    const sw = a1.context().serviceWorkers().find((w) => w.url() === `${BASE}/sw.js`) || (await a1.context().waitForEvent('serviceworker'));
    // The click itself cannot be made here: the worker's click handler
    // runs on a NotificationEvent of the notification shown.
    const tabs = await sw.evaluate(async () => {
      const [n] = await self.registration.getNotifications();
      self.dispatchEvent(new NotificationEvent('notificationclick', { notification: n }));
      return (await self.clients.matchAll({ type: 'window', includeUncontrolled: true })).length;
    });
    assert(tabs >= 2, `the worker sees ${tabs} tabs`);
    const sel = `${tid('message')}[data-seq="${target}"].target`;
    const went = await waitFor(async () => {
      for (const page of [a1, a2]) if (await page.$(sel)) return page;
      return null;
    }, 'a tab shows the message');
    assert((await went.textContent(tid('room-title'))).includes(MISS), 'another room is open');
    assert(new URL(went.url()).hash === `#room=${MISS}`, `the address says ${new URL(went.url()).hash}`);
    const other = went === a1 ? a2 : a1;
    assert((await other.textContent(tid('room-title'))).includes(HOME), 'both tabs went');
  });

  // Chromium refuses push subscriptions in a context that is not a profile
  // on disk (as every Playwright context is: "incognito"), and says so on the
  // console: what can be checked is the offer and a refusal said plainly.
  // A server without Web Push (distributed mode without VAPID keys) offers
  // nothing: the button stays hidden.
  const noPushHere = [
    { page: 'alice1', re: /does not support the Push API in incognito/, why: 'no push service for this browser context' },
    { page: 'alice1', re: /status of 404\b.*\/api\/push\/vapid/, why: 'no Web Push on this server' },
  ];
  await check('browser push: offered where the server has Web Push (and Chromium PushManager); a refused subscription is said, nothing is kept', () =>
    expecting(noPushHere, async () => {
      const vapid = await a1.context().request.get(`${BASE}/api/push/vapid`, { timeout: WAIT });
      await a1.click(tid('bell'));
      await a1.waitForSelector(`${tid('bell-panel')}:popover-open`);
      if (vapid.status() === 404) {
        await new Promise((r) => setTimeout(r, 1000));
        assert(await a1.isHidden(tid('push-toggle')), 'push offered by a server without it');
        console.log('      (this server has no Web Push: the button stays hidden)');
        return;
      }
      assert(vapid.ok(), `GET /api/push/vapid: ${vapid.status()}`);
      await a1.waitForSelector(`${tid('push-toggle')}:not([hidden])`, { timeout: WAIT });
      assert((await a1.textContent(tid('push-toggle'))) === T('push.on'), `the button says ${await a1.textContent(tid('push-toggle'))}`);
      await a1.click(tid('push-toggle'));
      const said = await waitFor(async () => a1.$eval(tid('notice'), (e) => (e.hidden ? '' : e.textContent)), 'a notice');
      const prefix = T('push.failed', { error: '' });
      assert(said.startsWith(prefix), `the notice says ${JSON.stringify(said)}`);
      await waitFor(async () => !(await a1.isDisabled(tid('push-toggle'))), 'the button usable again');
      assert((await a1.getAttribute(tid('push-toggle'), 'data-on')) === 'false', 'push shows as on');
      assert((await a1.textContent(tid('push-toggle'))) === T('push.on'), 'the button no longer offers push');
      const sub = await a1.evaluate(async () => (await navigator.serviceWorker.getRegistration('/'))?.pushManager.getSubscription());
      assert(!sub, 'a subscription was kept');
    }),
  );

  await finalChecks(5);
}

await run(main, 240_000);
