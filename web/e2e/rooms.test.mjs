// Browser test of rooms with members (PROTOCOL.md v2) in real headless
// Chromium: three people in three browser contexts.
//
//   PARLEY_URL=http://127.0.0.1:8080 node web/e2e/rooms.test.mjs
//
// Env and output as harness.mjs says (run from Go by TestBrowserRooms).
//
// alice creates a private room; bob, not a member, neither sees it nor, when
// he opens it by name or address, anything of it; alice adds him by name, he
// gets it and its messages, she makes him moderator; carol joins a public
// room from the directory and is banned from it, and her room goes away with
// a plain message; a muted bob's send is marked failed; settings changed by
// alice show for bob; a click on a name starts a direct message that both
// find under direct messages; every change is a quiet line of the timeline.
//
// No CSP violation, console error or warning may be seen (harness.mjs),
// except the ones a check provokes on purpose, declared with expecting():
// the 404 and 403 answers a page gets for a room it may not read.

import {
  BASE,
  T,
  WAIT,
  assert,
  check,
  expecting,
  finalChecks,
  joinRoom,
  launch,
  messages,
  newPage,
  send,
  signIn,
  suffix,
  tid,
  waitFor,
  waitForText,
  run,
  waitLive,
} from './harness.mjs';

const PRIV = `priv-${suffix}`;
const PUB = `pub-${suffix}`;
// A room is listed for a new member when the server's membership frame
// reaches their page: well before the list's periodic refresh (every 10 s).
const LIST_WAIT = 5_000;

const item = (list, room) => `${tid(list)} [data-room="${room}"]`;
const member = (user) => `${tid('member-list')} ${tid('member')}[data-user="${user}"]`;

/** events lists the quiet timeline lines the page shows: {action, target, text, seq}. */
const events = (page) =>
  page.$$eval(tid('event'), (lis) =>
    lis.map((li) => ({ action: li.dataset.action, target: li.dataset.target, text: li.textContent, seq: Number(li.dataset.seq) })),
  );

/** waitEvent waits for a timeline line of `action` (and target, when given) whose text includes `text`. */
async function waitEvent(page, action, { target, text } = {}, timeout = WAIT) {
  return waitFor(
    async () => (await events(page)).find((e) => e.action === action && (!target || e.target === target) && (!text || e.text.includes(text))),
    `event ${action} ${target || ''} ${text || ''}`,
    timeout,
  );
}

/** openMembers shows the member panel, if hidden. */
async function openMembers(page) {
  await page.waitForSelector(`${tid('members-toggle')}:not([hidden])`);
  if (await page.isHidden(tid('members-panel'))) await page.click(tid('members-toggle'));
  await page.waitForSelector(`${tid('members-panel')}:not([hidden])`);
}

/** menuOf opens the person menu from element `sel` and returns the actions it offers. */
async function menuOf(page, sel) {
  await page.click(sel);
  await page.waitForSelector(`${tid('person-menu')}:popover-open`);
  return page.$$eval(`${tid('person-menu-items')} [role="menuitem"]`, (bs) => bs.map((b) => b.dataset.testid.replace(/^person-/, '')));
}

async function closeMenu(page) {
  await page.keyboard.press('Escape');
  await page.waitForSelector(`${tid('person-menu')}:not(:popover-open)`, { state: 'attached' });
}

/** roleShown is the role badge of user in the page's member list ('' for a plain member). */
const roleShown = (page, user) => page.$eval(member(user), (li) => li.querySelector('[data-testid="member-role"]')?.textContent || '');

/** assertNothingOf checks that the page shows nothing of room `room`: no messages, events, title, topic or members. */
async function assertNothingOf(page, room, who) {
  const shown = await page.evaluate(() => ({
    items: document.querySelectorAll('[data-testid="message-list"] > li').length,
    title: document.querySelector('[data-testid="room-display-title"]').textContent,
    topic: document.querySelector('[data-testid="room-topic"]').textContent,
    sub: document.querySelector('[data-testid="room-sub"]').hidden,
    members: document.querySelector('[data-testid="members-toggle"]').hidden,
    panel: document.querySelectorAll('[data-testid="member-list"] > li').length,
    input: document.querySelector('[data-testid="message-input"]').disabled,
  }));
  const s = `${who}: ${JSON.stringify(shown)}`;
  assert(shown.items === 0, `messages or events of ${room} shown; ${s}`);
  assert(!shown.title && !shown.topic && shown.sub, `title or topic of ${room} shown; ${s}`);
  assert(shown.members && shown.panel === 0, `members of ${room} shown; ${s}`);
  assert(shown.input, `the composer is open for ${room}; ${s}`);
  assert((await page.$(item('room-list', room))) === null, `${who}'s sidebar lists ${room}`);
}

async function main() {
  await launch();
  const alice = await newPage('alice');
  const bob = await newPage('bob');
  const carol = await newPage('carol');

  await check('three people sign in', async () => {
    // carol is on SSE + POST: what puts her out of a room and refuses her
    // sends comes by that way too.
    for (const [page, name, transport] of [
      [alice, 'alice', 'ws'],
      [bob, 'bob', 'ws'],
      [carol, 'carol', 'sse'],
    ]) {
      await page.goto(`${BASE}/${transport === 'sse' ? '?transport=sse' : ''}`);
      await signIn(page, name);
      await waitLive(page, transport);
    }
  });

  await check('alice creates a private room with a title and a topic', async () => {
    await alice.click(tid('create-open'));
    await alice.waitForSelector(`${tid('create-dialog')}[open]`);
    await alice.fill(tid('create-name'), PRIV);
    await alice.check(tid('create-private'));
    await alice.fill(tid('create-title'), 'Secret plans');
    await alice.fill(tid('create-topic'), 'Only for us');
    await alice.click(tid('create-submit'));
    await alice.waitForSelector(`${tid('create-dialog')}:not([open])`, { state: 'attached' });
    await waitFor(async () => new URL(alice.url()).hash === `#room=${PRIV}`, 'the new room is opened');
    await alice.waitForSelector(`${item('room-list', PRIV)} .room-lock:not([hidden])`);
    await waitFor(async () => (await alice.textContent(tid('room-display-title'))) === 'Secret plans', 'the title in the head');
    assert((await alice.textContent(tid('room-topic'))) === 'Only for us', 'the topic is not shown');
    assert((await alice.textContent(tid('room-kind'))) === T('room.kind.private'), 'the room is not marked private');
    await waitEvent(alice, 'create', { text: T('event.create', { actor: 'alice' }) });
    await openMembers(alice);
    await alice.waitForSelector(member('alice'));
    assert((await roleShown(alice, 'alice')) === T('role.owner'), `alice shows as ${await roleShown(alice, 'alice')}`);
    await send(alice, `before bob ${suffix}`);
    await waitForText(alice, `before bob ${suffix}`);
  });

  const notFound = [{ page: 'bob', re: new RegExp(`status of 404\\b.*/api/rooms/${PRIV}`), why: 'a private room bob is not in' }];

  await check('bob, not a member, does not see it, and opening it by name or address shows nothing of it', () => expecting(notFound, async () => {
    assert((await bob.$(item('room-list', PRIV))) === null, 'bob lists the private room');
    // By name, in the room form.
    await bob.fill(tid('room-input'), PRIV);
    await bob.click(tid('room-join'));
    await waitFor(async () => (await bob.textContent(tid('pane-status'))) === T('room.notFound', { room: PRIV }), 'the pane says there is no such room');
    await assertNothingOf(bob, PRIV, 'bob');
    // By address, in a fresh load.
    await bob.goto(`${BASE}/#room=${PRIV}`);
    await waitFor(async () => (await bob.textContent(tid('pane-status'))) === T('room.notFound', { room: PRIV }), 'the pane says there is no such room');
    await assertNothingOf(bob, PRIV, 'bob');
    const api = await bob.context().request.get(`${BASE}/api/rooms/${PRIV}/messages`, { timeout: WAIT });
    assert(api.status() === 404, `history answers bob ${api.status()}`);
  }));

  await check('alice adds bob by name: he finds the room in his sidebar and gets its messages', () => expecting(notFound, async () => {
    await alice.fill(tid('add-member-input'), 'bob');
    await alice.click(tid('add-member-button'));
    await alice.waitForSelector(member('bob'));
    await waitEvent(alice, 'add', { target: 'bob', text: T('event.add', { actor: 'alice', target: 'bob' }) });
    // bob still has the room open as one he may not read: once his list
    // has it, the page opens it afresh.
    await bob.waitForSelector(item('room-list', PRIV), { timeout: LIST_WAIT });
    await bob.click(`${item('room-list', PRIV)} a`);
    await waitEvent(bob, 'add', { target: 'bob' });
    await waitFor(async () => (await bob.textContent(tid('room-display-title'))) === 'Secret plans', "the title in bob's head");
    const text = `after bob ${suffix}`;
    await send(alice, text);
    await waitForText(bob, text);
    // A member of a private room reads it from the item that let him in.
    const shown = await messages(bob);
    assert(!shown.some((m) => m.text === `before bob ${suffix}`), `bob sees what was said before he was added: ${JSON.stringify(shown)}`);
  }));

  await check('alice makes bob moderator: the role shows for both', async () => {
    const offered = await menuOf(alice, `${member('bob')} ${tid('member-name')}`);
    for (const a of ['dm', 'promote', 'remove', 'mute1h', 'mute1d', 'ban1h', 'ban1d', 'banForever']) assert(offered.includes(a), `the owner is not offered ${a} on bob: ${offered}`);
    await alice.click(tid('person-promote'));
    await waitFor(async () => (await roleShown(alice, 'bob')) === T('role.moderator'), "bob's role in alice's list");
    await waitEvent(alice, 'role', { target: 'bob', text: T('event.roleModerator', { actor: 'alice', target: 'bob' }) });
    await waitEvent(bob, 'role', { target: 'bob' });
    await openMembers(bob);
    await waitFor(async () => (await roleShown(bob, 'bob')) === T('role.moderator'), "bob's role in his own list");
    assert((await roleShown(bob, 'alice')) === T('role.owner'), "alice's role in bob's list");
    await bob.waitForSelector(`${tid('settings-open')}:not([hidden])`);
  });

  await check('menus offer only what the role allows', async () => {
    // A moderator has nothing on the owner but a direct message.
    const onOwner = await menuOf(bob, `${member('alice')} ${tid('member-name')}`);
    assert(JSON.stringify(onOwner) === '["dm"]', `bob is offered ${onOwner} on alice`);
    await closeMenu(bob);
    // Nobody has anything on themselves but leaving.
    const onSelf = await menuOf(alice, `${member('alice')} ${tid('member-name')}`);
    assert(JSON.stringify(onSelf) === '["leave"]', `alice is offered ${onSelf} on herself`);
    await closeMenu(alice);
    // The menu is a keyboard one: arrows move, Escape closes and gives focus back.
    const invoker = `${member('bob')} ${tid('member-name')}`;
    await alice.focus(invoker);
    await alice.keyboard.press('Enter');
    await alice.waitForSelector(`${tid('person-menu')}:popover-open`);
    const first = await alice.evaluate(() => document.activeElement?.dataset.testid);
    await alice.keyboard.press('ArrowDown');
    const second = await alice.evaluate(() => document.activeElement?.dataset.testid);
    assert(first === 'person-dm' && second && second !== first, `focus went ${first} then ${second}`);
    await closeMenu(alice);
    const back = await alice.evaluate(() => document.activeElement?.closest('[data-testid="member"]')?.dataset.user);
    assert(back === 'bob', `focus went back to ${back}`);
  });

  await check('carol joins a public room from the directory', async () => {
    await alice.click(tid('create-open'));
    await alice.fill(tid('create-name'), PUB);
    await alice.check(tid('create-public'));
    await alice.fill(tid('create-title'), 'Town square');
    await alice.click(tid('create-submit'));
    await waitFor(async () => new URL(alice.url()).hash === `#room=${PUB}`, 'the public room is opened');
    await waitEvent(alice, 'create');
    const welcome = `welcome ${suffix}`;
    await send(alice, welcome);
    await waitForText(alice, welcome);

    await carol.click(tid('directory-open'));
    await carol.waitForSelector(`${tid('directory-dialog')}[open]`);
    const entry = `${tid('directory-list')} ${tid('directory-item')}[data-room="${PUB}"]`;
    await carol.waitForSelector(entry);
    assert((await carol.textContent(entry)).includes('Town square'), 'the directory does not show the title');
    assert((await carol.$(`${tid('directory-list')} ${tid('directory-item')}[data-room="${PRIV}"]`)) === null, 'the directory lists the private room');
    await carol.click(`${entry} ${tid('directory-join')}`);
    await carol.waitForSelector(`${tid('directory-dialog')}:not([open])`, { state: 'attached' });
    await waitFor(async () => (await carol.textContent(tid('room-title'))).includes(PUB), "the room opens in carol's page");
    await carol.waitForSelector(item('room-list', PUB));
    await waitForText(carol, welcome);
    await waitEvent(carol, 'add', { target: 'carol', text: T('event.join', { target: 'carol' }) });
    await waitEvent(alice, 'add', { target: 'carol', text: T('event.join', { target: 'carol' }) });
    const hi = `hi from carol ${suffix}`;
    await send(carol, hi);
    await waitForText(alice, hi);
    // A plain member has nothing on the owner but a direct message.
    const onOwner = await menuOf(carol, `${tid('message')}[data-user="alice"] ${tid('message-user')}`);
    assert(JSON.stringify(onOwner) === '["dm"]', `carol is offered ${onOwner} on alice`);
    await closeMenu(carol);
  });

  const refused = [{ page: 'carol', re: new RegExp(`status of 403\\b.*/api/rooms/${PUB}/messages`), why: 'a POST of a muted carol' }];

  await check("carol, on SSE, is muted: her send is marked failed", () => expecting(refused, async () => {
    const offered = await menuOf(alice, `${tid('message')}[data-user="carol"] ${tid('message-user')}`);
    assert(offered.includes('mute1d') && offered.includes('mute1h'), `mute not offered: ${offered}`);
    await alice.click(tid('person-mute1d'));
    await waitEvent(carol, 'mute', { target: 'carol' });
    const text = `carol muted ${suffix}`;
    await send(carol, text);
    await waitForText(carol, text, { state: 'failed' });
    assert(!(await messages(alice)).some((m) => m.text === text), 'alice got the muted message');
  }));

  const banned = [{ page: 'carol', re: new RegExp(`status of 403\\b.*/api/rooms/${PUB}`), why: 'a room carol is banned from' }];

  await check("alice bans carol from a message's name: carol's room goes away with a plain message, and her sends are refused", () => expecting(banned, async () => {
    const offered = await menuOf(alice, `${tid('message')}[data-user="carol"] ${tid('message-user')}`);
    assert(offered.includes('ban1d') && offered.includes('banForever') && offered.includes('ban1h'), `ban not offered: ${offered}`);
    await alice.click(tid('person-ban1d'));
    await waitEvent(alice, 'ban', { target: 'carol' });
    await waitFor(async () => (await carol.textContent(tid('pane-status'))) === T('room.bannedFrom', { room: PUB }), "carol's pane says she was banned");
    await waitFor(async () => (await carol.textContent(`${tid('notice')} .notice-text`)) === T('room.bannedFrom', { room: PUB }), 'a notice says so');
    await assertNothingOf(carol, PUB, 'carol');
    const res = await carol.context().request.post(`${BASE}/api/rooms/${PUB}/messages`, { data: { id: `banned-${suffix}`, text: 'let me in' }, timeout: WAIT });
    assert(res.status() === 403, `carol's POST answered ${res.status()}`);
    // Opening it again shows nothing of it either.
    await carol.reload();
    await waitFor(async () => (await carol.textContent(tid('pane-status'))).includes(`#${PUB}`), "carol's pane says she cannot read it");
    await assertNothingOf(carol, PUB, 'carol');
    await openMembers(alice);
    await alice.waitForSelector(`${tid('ban-list')} ${tid('ban')}[data-user="carol"]`);
  }));

  await check("mute: bob's send is marked failed; after unmute, Retry sends it", async () => {
    await alice.click(`${item('room-list', PRIV)} a`);
    await waitFor(async () => (await alice.textContent(tid('room-title'))).includes(PRIV), 'alice back in the private room');
    await openMembers(alice);
    await alice.waitForSelector(member('bob'));
    await menuOf(alice, `${member('bob')} ${tid('member-name')}`);
    await alice.click(tid('person-mute1h'));
    await waitEvent(alice, 'mute', { target: 'bob' });
    await waitEvent(bob, 'mute', { target: 'bob' });
    await alice.waitForSelector(`${member('bob')} ${tid('member-muted')}`);
    const text = `while muted ${suffix}`;
    await send(bob, text);
    const failed = await waitForText(bob, text, { state: 'failed' });
    const shown = await bob.textContent(`${tid('message')}[data-id="${failed.id}"] ${tid('message-error')}`);
    assert(shown.startsWith(T('message.notSentTitle')), `the failed message says ${JSON.stringify(shown)}`);
    assert(!(await messages(alice)).some((m) => m.text === text), 'alice got the muted message');
    const offered = await menuOf(alice, `${member('bob')} ${tid('member-name')}`);
    assert(offered.includes('unmute') && !offered.includes('mute1h'), `on a muted bob alice is offered ${offered}`);
    await alice.click(tid('person-unmute'));
    await waitEvent(bob, 'unmute', { target: 'bob' });
    await bob.click(`${tid('message')}[data-id="${failed.id}"] ${tid('message-retry')}`);
    await waitForText(bob, text);
    await waitForText(alice, text);
  });

  await check('settings: title, topic and slow mode changed by alice show for bob', async () => {
    await alice.click(tid('settings-open'));
    await alice.waitForSelector(`${tid('settings-dialog')}[open]`);
    assert((await alice.inputValue(tid('settings-title'))) === 'Secret plans', 'the dialog does not show the title');
    await alice.fill(tid('settings-title'), 'Plans, revised');
    await alice.fill(tid('settings-topic'), 'Still only for us');
    await alice.fill(tid('settings-slow'), '30');
    await alice.click(tid('settings-save'));
    await alice.waitForSelector(`${tid('settings-dialog')}:not([open])`, { state: 'attached' });
    await waitFor(async () => (await bob.textContent(tid('room-display-title'))) === 'Plans, revised', "the title in bob's head");
    await waitFor(async () => (await bob.textContent(tid('room-topic'))) === 'Still only for us', "the topic in bob's head");
    await waitFor(async () => (await bob.textContent(tid('room-slow'))) === T('room.slowMode', { s: 30 }), "slow mode in bob's head");
    await waitEvent(bob, 'update', { text: T('event.title', { actor: 'alice', title: 'Plans, revised' }) });
    await waitEvent(bob, 'update', { text: T('event.slow', { actor: 'alice', s: 30 }) });
    assert((await alice.textContent(tid('room-display-title'))) === 'Plans, revised', "alice's head");
  });

  let dm;
  await check('a click on a name starts a direct message, under direct messages for both', async () => {
    const offered = await menuOf(alice, `${tid('message')}[data-user="bob"] ${tid('message-user')}`);
    assert(offered[0] === 'dm', `the first item is ${offered[0]}`);
    await alice.click(tid('person-dm'));
    await waitFor(async () => (await alice.textContent(tid('room-title'))).includes('@bob'), 'the direct room opens as @bob');
    dm = new URL(alice.url()).hash.replace('#room=', '');
    await alice.waitForSelector(item('dm-list', dm));
    assert((await alice.textContent(`${item('dm-list', dm)} .room-label`)) === 'bob', 'the DM is not named after bob');
    assert((await alice.$(item('room-list', dm))) === null, 'the DM is listed among the rooms');
    assert((await alice.textContent(tid('room-kind'))) === T('room.kind.direct'), 'the room is not marked direct');
    assert(await alice.isHidden(tid('settings-open')), 'a direct room offers settings');
    const text = `just between us ${suffix}`;
    await send(alice, text);
    await waitForText(alice, text);
    await bob.waitForSelector(item('dm-list', dm), { timeout: LIST_WAIT });
    assert((await bob.textContent(`${item('dm-list', dm)} .room-label`)) === 'alice', "bob's DM is not named after alice");
    await bob.click(`${item('dm-list', dm)} a`);
    await waitForText(bob, text);
    await waitFor(async () => (await bob.textContent(tid('room-title'))).includes('@alice'), "bob's head says @alice");
    // carol is in neither room.
    assert((await carol.$(item('dm-list', dm))) === null, "carol lists alice and bob's DM");
  }, { limit: 45_000 });

  await check('every change is a quiet line of the timeline, also after a reload', async () => {
    await alice.goto(`${BASE}/#room=${PRIV}`);
    await alice.reload(); // history, not the live stream
    await waitLive(alice, 'ws');
    await waitEvent(alice, 'update');
    const actions = (await events(alice)).map((e) => e.action);
    for (const a of ['create', 'add', 'role', 'mute', 'unmute', 'update']) assert(actions.includes(a), `no ${a} line in ${JSON.stringify(actions)}`);
    // Lines, not chat bubbles: no avatar, no author, and each item of the
    // list is either a message or such a line.
    const shape = await alice.evaluate(() => ({
      bubbly: document.querySelectorAll('[data-testid="event"].msg, [data-testid="event"] .msg-avatar, [data-testid="event"] [data-testid="message-user"]').length,
      items: document.querySelectorAll('[data-testid="message-list"] > li').length,
      messages: document.querySelectorAll('[data-testid="message-list"] > [data-testid="message"]').length,
      events: document.querySelectorAll('[data-testid="message-list"] > [data-testid="event"]').length,
    }));
    assert(shape.bubbly === 0 && shape.items === shape.messages + shape.events && shape.events >= 6, `the list: ${JSON.stringify(shape)}`);
    await alice.goto(`${BASE}/#room=${PUB}`);
    await waitEvent(alice, 'ban', { target: 'carol' });
    const pub = (await events(alice)).map((e) => e.action);
    for (const a of ['create', 'add', 'ban']) assert(pub.includes(a), `no ${a} line in ${JSON.stringify(pub)}`);
  });

  await check("bob joins the public room from its head; alice removes him: it goes from his sidebar with a plain message", async () => {
    await bob.goto(`${BASE}/#room=${PUB}`);
    await waitForText(bob, `welcome ${suffix}`);
    // A public room one may read but is not in offers to join it.
    await bob.click(`${tid('room-join-public')}:not([hidden])`);
    await bob.waitForSelector(`${tid('room-join-public')}[hidden]`, { state: 'attached' });
    await waitEvent(bob, 'add', { target: 'bob', text: T('event.join', { target: 'bob' }) });
    await bob.waitForSelector(item('room-list', PUB));
    await alice.goto(`${BASE}/#room=${PUB}`);
    await openMembers(alice);
    await alice.waitForSelector(member('bob'));
    await menuOf(alice, `${member('bob')} ${tid('member-name')}`);
    await alice.click(tid('person-remove'));
    await waitEvent(alice, 'remove', { target: 'bob', text: T('event.remove', { actor: 'alice', target: 'bob' }) });
    await waitFor(async () => (await bob.textContent(tid('pane-status'))) === T('room.removedFrom', { room: PUB }), "bob's pane says he was removed");
    await waitFor(async () => (await bob.textContent(`${tid('notice')} .notice-text`)) === T('room.removedFrom', { room: PUB }), 'a notice says so');
    await assertNothingOf(bob, PUB, 'bob');
    await waitFor(async () => (await alice.$(member('bob'))) === null, "bob still in alice's member list");
  });

  await check('leaving a room: it goes from the sidebar, and the pane says so', async () => {
    await alice.goto(`${BASE}/#room=${PRIV}`);
    await waitFor(async () => (await alice.textContent(tid('room-title'))).includes(PRIV), 'alice back in the private room');
    await bob.click(`${item('room-list', PRIV)} a`);
    await openMembers(bob);
    await bob.waitForSelector(member('bob'));
    const offered = await menuOf(bob, `${member('bob')} ${tid('member-name')}`);
    assert(JSON.stringify(offered) === '["leave"]', `bob is offered ${offered} on himself`);
    await bob.click(tid('person-leave'));
    await waitFor(async () => (await bob.textContent(tid('pane-status'))) === T('room.youLeft', { room: PRIV }), "bob's pane says he left");
    await assertNothingOf(bob, PRIV, 'bob');
    await waitEvent(alice, 'leave', { target: 'bob', text: T('event.leave', { target: 'bob' }) });
    await openMembers(alice);
    await alice.waitForSelector(member('alice'));
    await waitFor(async () => (await alice.$(member('bob'))) === null, "bob still in alice's member list");
  });

  await finalChecks(5);
}

await run(main, 240_000);
