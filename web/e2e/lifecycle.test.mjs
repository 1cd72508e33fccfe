// Browser test of a message's life (PROTOCOL.md v2, "Message lifecycle")
// in the UI, in real headless Chromium against the real server:
//
//   PARLEY_URL=http://127.0.0.1:8080 node web/e2e/lifecycle.test.mjs
//
// Env and output as harness.mjs says (run from Go by TestBrowserLifecycle).
//
// alice and bob (two browser contexts) share a room. alice sends a message
// and, after enough others that it scrolls out of view, bob replies to it:
// the composer quotes it, the reply shows the quote on both pages, and a
// click on the quote scrolls to the message and marks it. alice edits it in
// place: bob sees the new text and "(edited)", and his reply's quote says
// the new text too. bob reacts with 👍 from the picker: alice sees the chip
// with count 1 and bob's name in its title, and toggling it is bob's (his
// chip is pressed; a second click takes it back, and puts it again). While
// bob is offline alice edits again and reacts to his reply: back online, his
// page folds both from the replay of his resume. alice
// deletes another message of hers after a confirmation: bob sees "message
// deleted". Edits, deletes and reactions are never lines of their own. A
// reload of each page shows the very same (history folded by the server).
// No CSP violation, console error or warning may be seen.

import { BASE, T, WAIT, assert, check, finalChecks, launch, newPage, run, signIn, suffix, tid, waitFor, waitLive } from './harness.mjs';

const ROOM = `life-${suffix}`;
const FIRST = `the first word ${suffix}`;
const EDITED = `the first word, edited ${suffix}`;
const AGAIN = `the first word, edited again ${suffix}`;
const DOOMED = `a message to delete ${suffix}`;
const REPLY = `a reply ${suffix}`;
const FILLERS = 30; // messages between FIRST and the reply: FIRST scrolls out of view

async function apiCall(page, method, path, data) {
  const res = await page.context().request.fetch(`${BASE}${path}`, { method, data, timeout: WAIT });
  assert(res.ok(), `${method} ${path}: ${res.status()} ${await res.text()}`);
  return res.status() === 204 ? null : res.json();
}

/** seqOf is the seq of the message with text in ROOM, as history has it. */
async function seqOf(page, text) {
  return waitFor(async () => {
    const h = await apiCall(page, 'GET', `/api/rooms/${ROOM}/messages?limit=200`);
    return h.messages.find((m) => m.text === text && !m.kind)?.seq;
  }, `seq of ${JSON.stringify(text)}`);
}

const msgSel = (seq) => `${tid('message')}[data-seq="${seq}"]`;

/** shown is what the page shows of the message at seq (null: not shown). */
function shown(page, seq) {
  return page.$$eval(msgSel(seq), (lis) => {
    const li = lis[0];
    if (!li) return null;
    const q = li.querySelector('[data-testid="message-quote"]');
    return {
      text: li.querySelector('[data-testid="message-text"]')?.textContent,
      deleted: li.dataset.deleted === 'true',
      edited: li.querySelector('[data-testid="message-edited"]')?.textContent || '',
      quote: q ? { to: Number(q.dataset.replyTo), text: q.textContent } : null,
      reactions: [...li.querySelectorAll('[data-testid="reaction"]')].map((b) => ({
        emoji: b.dataset.emoji,
        count: b.querySelector('[data-testid="reaction-count"]')?.textContent,
        title: b.title,
        pressed: b.getAttribute('aria-pressed'),
      })),
      actions: [...li.querySelectorAll('.msg-actions button')].filter((b) => getComputedStyle(b).display !== 'none').map((b) => b.dataset.testid),
    };
  });
}

async function waitShown(page, seq, pred, what) {
  return waitFor(async () => {
    const s = await shown(page, seq);
    return s && pred(s) && s;
  }, what);
}

/** act hovers the message at seq (its actions show on hover) and clicks one of them. */
async function act(page, seq, action) {
  await page.hover(`${msgSel(seq)} ${tid('message-text')}`);
  await page.click(`${msgSel(seq)} ${tid(`message-${action}`)}`);
}

/** lines is how many lines the message list shows (messages and events), and the seqs of the messages. */
const lines = (page) =>
  page.$$eval(`${tid('message-list')} > li`, (lis) => ({ n: lis.length, seqs: lis.filter((li) => li.dataset.testid === 'message').map((li) => Number(li.dataset.seq)) }));

async function main() {
  await launch();
  const alice = await newPage('alice');
  const bob = await newPage('bob');
  let first = 0;
  let doomed = 0;
  let reply = 0;

  await check('alice and bob sign in and open a room they share', async () => {
    await alice.goto(`${BASE}/`);
    await signIn(alice, 'alice');
    await bob.goto(`${BASE}/`);
    await signIn(bob, 'bob');
    await apiCall(alice, 'POST', '/api/rooms', { room: ROOM, kind: 'public' });
    await apiCall(bob, 'POST', `/api/rooms/${ROOM}/members`, { user: 'bob' });
    for (const p of [alice, bob]) {
      await p.goto(`${BASE}/#room=${ROOM}`);
      await waitLive(p, 'ws');
    }
  });

  await check('alice sends; bob replies from the message: the composer quotes it, the reply shows the quote on both pages', async () => {
    await alice.fill(tid('message-input'), FIRST);
    await alice.click(tid('send-button'));
    first = await seqOf(alice, FIRST);
    await alice.fill(tid('message-input'), DOOMED);
    await alice.click(tid('send-button'));
    doomed = await seqOf(alice, DOOMED);
    for (let i = 0; i < FILLERS; i++) {
      await apiCall(alice, 'POST', `/api/rooms/${ROOM}/messages`, { id: `f-${suffix}-${i}`, text: `filler ${i} ${suffix}` });
    }
    await waitFor(async () => (await lines(bob)).seqs.includes(first + 1 + FILLERS), 'bob shows every filler');
    await bob.$eval(tid('message-pane'), (p) => {
      p.scrollTop = p.scrollHeight;
    });
    await act(bob, first, 'reply');
    const bar = await waitFor(async () => bob.$eval(tid('reply-bar'), (e) => !e.hidden && e.textContent), 'the reply bar shows');
    assert(bar.includes('alice') && bar.includes(FIRST), `reply bar says ${JSON.stringify(bar)}`);
    await bob.fill(tid('message-input'), REPLY);
    await bob.press(tid('message-input'), 'Enter');
    reply = await seqOf(bob, REPLY);
    const h = await apiCall(bob, 'GET', `/api/rooms/${ROOM}/messages?after=${reply - 1}&limit=1`);
    assert(h.messages[0]?.reply_to === first, `the stored reply has reply_to ${h.messages[0]?.reply_to}, want ${first}`);
    assert(await bob.$eval(tid('reply-bar'), (e) => e.hidden), 'the reply bar stays after sending');
    for (const [p, who] of [
      [alice, 'alice'],
      [bob, 'bob'],
    ]) {
      const s = await waitShown(p, reply, (s) => s.quote?.to === first, `${who}: the reply with its quote`);
      assert(s.text === REPLY && s.quote.text.includes('alice') && s.quote.text.includes(FIRST), `${who}: ${JSON.stringify(s)}`);
    }
  });

  await check("a click on the reply's quote scrolls to the message it answers and marks it", async () => {
    const outOfView = await bob.$eval(msgSel(first), (li) => {
      const pane = document.querySelector('[data-testid="message-pane"]').getBoundingClientRect();
      const b = li.getBoundingClientRect();
      return b.bottom <= pane.top || b.top >= pane.bottom;
    });
    assert(outOfView, 'the first message is in view before the click: nothing to jump to');
    await bob.click(`${msgSel(reply)} ${tid('message-quote')}`);
    await waitFor(
      () =>
        bob.$eval(msgSel(first), (li) => {
          const pane = document.querySelector('[data-testid="message-pane"]').getBoundingClientRect();
          const b = li.getBoundingClientRect();
          return li.classList.contains('target') && b.top >= pane.top - 1 && b.bottom <= pane.bottom + 1;
        }),
      'the first message is in view and marked',
    );
  });

  await check('only alice may edit her message; she edits it in place: bob sees the new text and "(edited)", and the quote follows', async () => {
    const onBob = await shown(bob, first);
    assert(!onBob.actions.includes('message-edit') && !onBob.actions.includes('message-delete'), `bob is offered ${onBob.actions} on alice's message`);
    const onAlice = await shown(alice, first);
    assert(onAlice.actions.includes('message-edit') && onAlice.actions.includes('message-delete'), `alice is offered ${onAlice.actions}`);
    // alice owns the room: she may delete bob's reply (not edit it); bob, a member, only his own.
    const replyOnAlice = await waitShown(alice, reply, (s) => s.actions.includes('message-delete'), "alice (the owner) is offered to delete bob's reply");
    assert(!replyOnAlice.actions.includes('message-edit'), `alice is offered ${replyOnAlice.actions} on bob's reply`);
    const replyOnBob = await shown(bob, reply);
    assert(replyOnBob.actions.includes('message-edit') && replyOnBob.actions.includes('message-delete'), `bob is offered ${replyOnBob.actions} on his reply`);
    await act(alice, first, 'edit');
    await alice.fill(`${msgSel(first)} ${tid('edit-input')}`, EDITED);
    await alice.press(`${msgSel(first)} ${tid('edit-input')}`, 'Enter');
    for (const [p, who] of [
      [bob, 'bob'],
      [alice, 'alice'],
    ]) {
      const s = await waitShown(p, first, (s) => s.text === EDITED, `${who}: the edited text`);
      assert(s.edited === T('message.edited'), `${who}: edited mark ${JSON.stringify(s.edited)}`);
      await waitShown(p, reply, (s) => s.quote?.text.includes(EDITED), `${who}: the quote shows the edited text`);
    }
    assert((await alice.$$(`${msgSel(first)} ${tid('editor')}`)).length === 0, 'the editor is still open');
  });

  await check('bob reacts 👍 from the picker: alice sees the chip, count 1, bob in its title; bob toggles his own', async () => {
    await act(bob, first, 'react');
    await bob.waitForSelector(`${tid('react-picker')}:popover-open`, { timeout: WAIT });
    await bob.click(`${tid('react-choice')}[data-emoji="👍"]`);
    const s = await waitShown(alice, first, (s) => s.reactions.length === 1, 'alice: a reaction chip');
    const chip = s.reactions[0];
    assert(chip.emoji === '👍' && chip.count === '1' && chip.title.includes('bob') && chip.pressed === 'false', `alice: ${JSON.stringify(chip)}`);
    const b = await waitShown(bob, first, (s) => s.reactions[0]?.pressed === 'true', "bob: his chip is pressed");
    assert(b.reactions[0].count === '1', JSON.stringify(b.reactions));
    // His chip takes his reaction back, and puts it again.
    await bob.click(`${msgSel(first)} ${tid('reaction')}`);
    await waitShown(alice, first, (s) => s.reactions.length === 0, 'alice: the chip goes when bob takes it back');
    await act(bob, first, 'react');
    await bob.click(`${tid('react-choice')}[data-emoji="👍"]`);
    await waitShown(alice, first, (s) => s.reactions[0]?.count === '1', 'alice: the chip is back');
  });

  await check('after a resume: what changed while bob was offline is folded from the replay', async () => {
    await bob.context().setOffline(true);
    await waitFor(async () => (await bob.$eval(tid('conn-state'), (e) => e.dataset.state)) === 'offline', 'bob offline');
    try {
      await act(alice, first, 'edit');
      await alice.fill(`${msgSel(first)} ${tid('edit-input')}`, AGAIN);
      await alice.click(`${msgSel(first)} ${tid('edit-save')}`);
      await waitShown(alice, first, (s) => s.text === AGAIN, 'alice: edited again');
      await act(alice, reply, 'react');
      await alice.click(`${tid('react-choice')}[data-emoji="🎉"]`);
      await waitShown(alice, reply, (s) => s.reactions[0]?.emoji === '🎉', "alice: her reaction on bob's reply");
    } finally {
      await bob.context().setOffline(false);
    }
    await waitLive(bob, 'ws');
    await waitShown(bob, first, (s) => s.text === AGAIN && s.edited === T('message.edited') && s.reactions[0]?.count === '1', 'bob: the second edit, his reaction kept');
    const s = await waitShown(bob, reply, (s) => s.reactions.length === 1, "bob: alice's reaction on his reply");
    assert(s.reactions[0].emoji === '🎉' && s.reactions[0].title.includes('alice') && s.quote.text.includes(AGAIN), JSON.stringify(s));
  });

  await check('alice deletes a message after a confirmation: bob sees "message deleted"', async () => {
    await act(alice, doomed, 'delete');
    await alice.waitForSelector(`${tid('delete-dialog')}[open]`, { timeout: WAIT });
    const quoted = await alice.textContent(tid('delete-text'));
    assert(quoted === DOOMED, `the dialog quotes ${JSON.stringify(quoted)}`);
    // Cancel leaves it be.
    await alice.click(tid('delete-cancel'));
    await alice.waitForSelector(`${tid('delete-dialog')}:not([open])`, { state: 'attached', timeout: WAIT });
    await act(alice, doomed, 'delete');
    await alice.click(tid('delete-confirm'));
    for (const [p, who] of [
      [bob, 'bob'],
      [alice, 'alice'],
    ]) {
      const s = await waitShown(p, doomed, (s) => s.deleted, `${who}: the message deleted`);
      assert(s.text === T('message.deleted') && s.actions.length === 0 && s.reactions.length === 0, `${who}: ${JSON.stringify(s)}`);
    }
    const h = await apiCall(bob, 'GET', `/api/rooms/${ROOM}/messages?after=${doomed - 1}&limit=1`);
    assert(h.messages[0]?.seq === doomed && h.messages[0].text === '', `history still says ${JSON.stringify(h.messages[0])}`);
  });

  const before = {};
  await check('edits, deletes and reactions are no lines of their own', async () => {
    const last = (await apiCall(bob, 'GET', `/api/rooms/${ROOM}/messages?limit=200`)).messages;
    const items = last.filter((m) => ['edit', 'delete', 'reaction'].includes(m.kind));
    assert(items.length >= 5, `history lists ${items.length} lifecycle items`);
    for (const [p, who] of [
      [alice, 'alice'],
      [bob, 'bob'],
    ]) {
      const l = await lines(p);
      const msgs = last.filter((m) => !m.kind).map((m) => m.seq);
      assert(JSON.stringify(l.seqs) === JSON.stringify(msgs), `${who} shows seqs ${l.seqs}, history's messages are ${msgs}`);
      before[who] = { first: await shown(p, first), doomed: await shown(p, doomed), reply: await shown(p, reply), n: l.n };
    }
  });

  await check('a reload shows the very same', async () => {
    for (const [p, who] of [
      [bob, 'bob'],
      [alice, 'alice'],
    ]) {
      await p.reload();
      await waitLive(p, 'ws');
      const s = await waitShown(p, reply, (s) => s.quote, `${who}: the reply after the reload`);
      const now = { first: await shown(p, first), doomed: await shown(p, doomed), reply: s, n: (await lines(p)).n };
      for (const k of ['first', 'doomed', 'reply']) {
        const a = JSON.stringify({ ...before[who][k], actions: undefined });
        const b = JSON.stringify({ ...now[k], actions: undefined });
        assert(a === b, `${who}: ${k} was ${a}, after the reload ${b}`);
      }
      assert(now.first.text === AGAIN && now.first.reactions[0]?.count === '1' && now.reply.reactions[0]?.emoji === '🎉' && now.doomed.deleted, `${who}: ${JSON.stringify(now)}`);
    }
  });

  await finalChecks(6);
}

run(main, 3 * 60_000);
