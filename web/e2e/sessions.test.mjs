// Browser test of Parley's people and sessions in real headless Chromium:
// accounts, guests that hold their names, sessions refreshed before they
// expire and ended everywhere by a sign-out.
//
//   PARLEY_URL=http://127.0.0.1:8080 PARLEY_TOKEN_TTL_S=30 node web/e2e/sessions.test.mjs
//
// Env as harness.mjs says, plus PARLEY_TOKEN_TTL_S: the server's token
// lifetime in seconds (PARLEY_TOKEN_TTL). It must be short (30 s or so):
// the test waits past a token's expiry to see the page refresh it in time.
// The server needs guests and accounts on.
//
// No CSP violation, console error or warning may be seen (harness.mjs) but
// the refusals the checks provoke, each declared with expecting(): the 409
// of a taken name, the 401 of a wrong password, the 429 of too many, and the 401s (and the
// refused WebSocket or EventSource) of the tabs whose session was ended.

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
  newPage,
  run,
  send,
  signIn,
  suffix,
  tid,
  waitFor,
  waitForText,
  waitLive,
} from './harness.mjs';

const TTL = Number(process.env.PARLEY_TOKEN_TTL_S || 0) * 1000;
if (!(TTL > 0 && TTL <= 60_000)) {
  console.error('PARLEY_TOKEN_TTL_S must be the server token lifetime in seconds, at most 60');
  process.exit(2);
}

const ROOM = `sess-${suffix}`;
const ACCOUNT = `ann-${suffix}`;
const PASSWORD = `correct horse ${suffix}`;
const GUEST = `gus-${suffix}`;
const ENDED = T('signin.ended');
// The server's own words (the API's error messages, e.g. that a name is
// taken) are shown in the page's language: its catalogue's server.<key>
// with the error's params (static/js/i18n.js errorText).
const TAKEN = (name) => T('server.the name %q (or one that looks like it) is taken', [JSON.stringify(name)]);

/** The visible text of the element with test id `id`, or null when it is hidden or absent. */
async function shown(page, id) {
  const e = await page.$(`${tid(id)}:not([hidden])`);
  return e && (await e.isVisible()) ? (await e.textContent()).trim() : null;
}

async function waitShown(page, id, what) {
  return waitFor(() => shown(page, id), `${id} shows ${what}`);
}

async function openTab(page, name) {
  await page.click(tid(`signin-tab-${name}`));
  await page.waitForSelector(`${tid(name === 'account' ? 'account-form' : 'password-form')}:visible`);
}

async function createAccount(page, name, password, confirm = password) {
  await openTab(page, 'account');
  await page.fill(tid('account-name'), name);
  await page.fill(tid('account-password'), password);
  await page.fill(tid('account-confirm'), confirm);
  await page.click(tid('account-button'));
}

async function passwordSignIn(page, name, password) {
  await openTab(page, 'password');
  await page.fill(tid('password-name'), name);
  await page.fill(tid('signin-password'), password);
  await page.click(tid('password-button'));
}

async function signedInAs(page, name) {
  await page.waitForSelector(tid('user-name'), { timeout: WAIT });
  const who = (await page.textContent(tid('user-name'))).trim();
  assert(who === name, `header shows ${JSON.stringify(who)}, want ${name}`);
}

/** The page is back on sign-in, saying the session ended. */
async function endedPage(page) {
  await page.waitForSelector(tid('signin-form'), { timeout: WAIT });
  assert(new URL(page.url()).searchParams.get('ended') === '1', `URL ${page.url()} lacks ?ended=1`);
  const text = await waitShown(page, 'signin-notice', 'the notice');
  assert(text === ENDED, `notice says ${JSON.stringify(text)}`);
}

/** A guest mark on the message with `text`: true, false, or undefined when the message is not shown. */
async function guestMark(page, text) {
  return page.$$eval(
    tid('message'),
    (lis, t) => {
      const li = lis.find((x) => x.querySelector('[data-testid="message-text"]')?.textContent === t);
      return li ? Boolean(li.querySelector('[data-testid="message-guest"]')) : undefined;
    },
    text,
  );
}

/**
 * recordRefreshes records each POST /api/session/refresh of page that was
 * answered 200: when it was sent, and the expiry it gave. (The time of the
 * request, not of the response: Playwright may report a response after the
 * page has already acted on it.)
 */
function recordRefreshes(page) {
  const sent = new Map(); // Request -> ms
  const seen = [];
  page.on('request', (req) => {
    if (req.url().endsWith('/api/session/refresh')) sent.set(req, Date.now());
  });
  page.on('response', async (res) => {
    if (!sent.has(res.request()) || res.status() !== 200) return;
    try {
      seen.push({ at: sent.get(res.request()), expires: (await res.json()).expires * 1000 });
    } catch {
      /* the page went away */
    }
  });
  return seen;
}

async function main() {
  await launch();
  const ann = await newPage('ann');
  const gus = await newPage('gus');
  const eve = await newPage('eve'); // signed out: tries the names of others
  const gusRefreshes = recordRefreshes(gus);
  const gusSockets = []; // when gus's page opened each WebSocket
  gus.on('websocket', () => gusSockets.push(Date.now()));

  const annText = `ann writes ${suffix}`;
  const gusText = `gus writes ${suffix}`;

  await check('the sign-in page offers guest, sign-in and account tabs', async () => {
    await ann.goto(`${BASE}/#room=${ROOM}`);
    for (const id of ['signin-tab-guest', 'signin-tab-password', 'signin-tab-account']) assert(await shown(ann, id), `${id} not shown`);
    assert(await ann.isVisible(tid('signin-form')), 'the guest form is not the first shown');
    assert(await ann.isHidden(tid('account-form')), 'the account form is shown before its tab is chosen');
    assert((await shown(ann, 'signin-notice')) === null, 'a notice is shown on a plain visit');
  });

  await check("account form: a short password and a mismatch are shown under their fields", async () => {
    await createAccount(ann, ACCOUNT, 'short');
    assert(/10/.test(await waitShown(ann, 'account-password-error', 'the length rule')), 'the rule is not said');
    await ann.fill(tid('account-password'), PASSWORD);
    assert((await shown(ann, 'account-password-error')) === null, 'the error stays after typing');
    await ann.fill(tid('account-confirm'), `${PASSWORD}!`);
    await ann.click(tid('account-button'));
    await waitShown(ann, 'account-confirm-error', 'the mismatch');
    assert((await shown(ann, 'account-name-error')) === null, 'an error under the name');
  });

  await check('create an account: signed in, not marked a guest', async () => {
    await ann.fill(tid('account-confirm'), PASSWORD);
    await ann.click(tid('account-button'));
    await signedInAs(ann, ACCOUNT);
    assert(await ann.isHidden(tid('user-guest')), 'the account is marked a guest');
    assert((await ann.textContent(tid('room-title'))).includes(ROOM), 'the room of the address was not opened');
    await waitLive(ann, 'ws');
    await send(ann, annText);
    await waitForText(ann, annText);
    assert((await guestMark(ann, annText)) === false, "the account's message is marked a guest's");
  });

  const conflict = (page) => [{ page, re: /status of 409\b.*\/api\/(session|accounts)/, why: 'the name is taken' }];

  await check("a guest cannot take the account's name, nor a look-alike: 409 under the name", () =>
    expecting(conflict('eve'), async () => {
      await eve.goto(`${BASE}/`);
      for (const name of [ACCOUNT, ACCOUNT.toUpperCase()]) {
        await eve.fill(tid('signin-name'), name);
        await eve.click(tid('signin-button'));
        const err = await waitShown(eve, 'signin-error', 'the conflict');
        assert(err === TAKEN(name), `${name}: the error says ${JSON.stringify(err)}, want ${JSON.stringify(TAKEN(name))}`);
        assert((await eve.getAttribute(tid('signin-name'), 'aria-invalid')) === 'true', `${name}: the name field is not marked invalid`);
        assert((await eve.$(tid('user-name'))) === null, `${name}: signed in`);
      }
      await createAccount(eve, ACCOUNT, 'another password 123');
      const err = await waitShown(eve, 'account-name-error', 'the conflict');
      assert(err === TAKEN(ACCOUNT), `account: the error says ${JSON.stringify(err)}, want ${JSON.stringify(TAKEN(ACCOUNT))}`);
      assert((await shown(eve, 'account-password-error')) === null, 'account: the conflict is shown under the password');
    }),
  );

  await check("a guest's message carries the guest mark, live and in history", async () => {
    await gus.goto(`${BASE}/#room=${ROOM}`);
    await signIn(gus, GUEST);
    await waitFor(() => shown(gus, 'user-guest'), 'the guest mark in the header');
    await waitLive(gus, 'ws');
    await send(gus, gusText);
    await waitForText(ann, gusText);
    assert((await guestMark(ann, gusText)) === true, 'no guest mark on the live message');
    assert((await guestMark(ann, annText)) === false, "a guest mark on the account's message");
    await ann.reload();
    await waitForText(ann, gusText);
    assert((await guestMark(ann, gusText)) === true, 'no guest mark on the message from history');
    await waitLive(ann, 'ws');
  });

  await check('a wrong password: 401 under the password field', () =>
    expecting([{ page: 'eve', re: /status of 401\b.*\/api\/session/, why: 'the wrong password' }], async () => {
      await eve.goto(`${BASE}/`);
      await passwordSignIn(eve, ACCOUNT, 'not the password');
      const err = await waitShown(eve, 'password-error', 'the refusal');
      assert(err === T('server.wrong name or password'), `the error says ${JSON.stringify(err)}`);
      assert((await shown(eve, 'password-name-error')) === null, 'the refusal is shown under the name');
      assert((await eve.$(tid('user-name'))) === null, 'signed in with a wrong password');
    }),
  );

  await check('too many attempts for a name: 429 under the form, not under a field', () =>
    expecting([{ page: 'eve', re: /status of (401|429)\b.*\/api\/session/, why: 'wrong passwords, then too many' }], async () => {
      // Tries are limited per name whether or not it is an account's; this
      // one is nobody's, so the account's own tries are left alone.
      const name = `nobody-${suffix}`;
      await eve.goto(`${BASE}/`);
      await openTab(eve, 'password');
      await eve.fill(tid('password-name'), name);
      let status = 0;
      for (let i = 0; i < 20 && status !== 429; i++) {
        await eve.fill(tid('signin-password'), `guess number ${i}`);
        const answer = eve.waitForResponse((r) => r.url().endsWith('/api/session') && r.request().method() === 'POST');
        await eve.click(tid('password-button'));
        status = (await answer).status();
        assert(status === 401 || status === 429, `attempt ${i + 1}: ${status}`);
      }
      assert(status === 429, 'never limited');
      const err = await waitShown(eve, 'password-form-error', 'the limit');
      const limits = ['server.too many sign-in attempts for this name; wait a minute', 'server.too many sign-ins from your address: at most %g per second'];
      assert(err === T(limits[0]) || err.startsWith(T(limits[1]).split('{0}')[0]), `the form error says ${JSON.stringify(err)}`);
      assert((await shown(eve, 'password-error')) === null, 'the limit is shown under the password');
    }),
  );

  await check('sign out, sign in again with the password, see your history', async () => {
    await ann.click(tid('signout-button'));
    await ann.waitForSelector(tid('signin-form'));
    assert((await shown(ann, 'signin-notice')) === null, 'signing out oneself says the session ended');
    await passwordSignIn(ann, ACCOUNT, PASSWORD);
    await signedInAs(ann, ACCOUNT);
    assert((await ann.textContent(tid('room-title'))).includes(ROOM), 'the room was not kept');
    await waitForText(ann, annText);
    await waitForText(ann, gusText);
    await waitLive(ann, 'ws');
  });

  await check("signing out in one tab ends the other tabs' sessions (WebSocket and SSE)", async () => {
    const tabs = { ann2: await newPage('ann2', { context: ann.context() }), ann3: await newPage('ann3', { context: ann.context() }) };
    const ended = Object.keys(tabs).map((page) => ({ page, re: /401|\/ws\b|\/events\b/, why: 'the session was ended in another tab' }));
    await expecting(ended, async () => {
      await tabs.ann2.goto(`${BASE}/#room=${ROOM}`);
      await tabs.ann3.goto(`${BASE}/?transport=sse#room=${ROOM}`);
      await waitLive(tabs.ann2, 'ws');
      await waitLive(tabs.ann3, 'sse');
      await waitForText(tabs.ann3, annText);
      await ann.click(tid('signout-button'));
      await ann.waitForSelector(tid('signin-form'));
      for (const tab of Object.values(tabs)) await endedPage(tab);
    });
    // Signing in from there opens the chat and drops the notice's ?ended=1.
    await passwordSignIn(tabs.ann2, ACCOUNT, PASSWORD);
    await signedInAs(tabs.ann2, ACCOUNT);
    assert(!new URL(tabs.ann2.url()).searchParams.has('ended'), `still ${tabs.ann2.url()}`);
    await waitForText(tabs.ann2, annText);
    for (const tab of Object.values(tabs)) await tab.close();
  });

  await check('the session is refreshed before it expires; the live connection carries on', async () => {
    // The token of gus's page load (its refresh at start): the page must
    // refresh it before it expires, and carry on past that expiry.
    const first = await waitFor(() => gusRefreshes[0], 'the refresh at start');
    const next = await waitFor(() => gusRefreshes[1], 'a refresh before expiry', first.expires - Date.now() + 5_000);
    assert(next.at < first.expires, `refresh sent ${next.at - first.expires} ms after the token expired`);
    // The client's margin: min(5 min, max(5 s, 10 % of the lifetime)),
    // counted from a pessimistic server clock (up to 2 s more).
    const margin = Math.min(300_000, Math.max(5_000, TTL * 0.1));
    assert(next.at > first.expires - margin - 3_000, `refreshed ${first.expires - next.at} ms before expiry: too early`);
    assert(next.expires > first.expires, 'the new token expires no later than the old one');
    // The page reopened its connection on the new token: the server ends
    // one at the expiry of the token it was opened with.
    assert(gusSockets.some((at) => at >= next.at && at < first.expires), 'no WebSocket opened after the refresh, before the old token expired');
    await waitFor(() => Date.now() > first.expires + 2_000, 'the old token to expire', TTL);
    await waitLive(gus, 'ws');
    assert(!new URL(gus.url()).searchParams.has('ended'), 'sent to sign-in');
    const text = `gus after refresh ${suffix}`;
    await send(gus, text);
    const m = await waitForText(gus, text);
    assert(Number.isInteger(m.seq), 'the message got no seq');
    assert((await guestMark(gus, text)) === true, 'no guest mark after the refresh');
  }, { limit: TTL + 30_000 });

  await finalChecks(8);
}

await run(main, 120_000 + 2 * TTL);
