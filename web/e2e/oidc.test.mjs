// Browser test of "Sign in with <provider>" in real headless Chromium,
// through the login form of a real OIDC provider (TestBrowserOIDC starts
// one on 127.0.0.1, zitadel/oidc's, and a Parley configured for it).
//
//   PARLEY_URL=… PARLEY_OIDC_USER=oidc-bob PARLEY_OIDC_PASSWORD=… PARLEY_OIDC_LABEL='Test IdP' node web/e2e/oidc.test.mjs
//
// Env as harness.mjs says, plus the provider user's name and password and
// the label the sign-in page shows. Parley's own pages must pass the CSP
// checks of harness.mjs; the provider's pages are not checked.

import { BASE, assert, check, finalChecks, joinRoom, launch, newPage, run, send, suffix, tid, waitForText, waitLive } from './harness.mjs';

const USER = process.env.PARLEY_OIDC_USER;
const PASSWORD = process.env.PARLEY_OIDC_PASSWORD;
const LABEL = process.env.PARLEY_OIDC_LABEL;
if (!USER || !PASSWORD || !LABEL) {
  console.error('PARLEY_OIDC_USER, PARLEY_OIDC_PASSWORD and PARLEY_OIDC_LABEL are required');
  process.exit(2);
}
const ROOM = `oidc-${suffix}`;

async function main() {
  await launch();
  const page = await newPage('bob');

  await check(`the sign-in page offers "Sign in with ${LABEL}"`, async () => {
    await page.goto(`${BASE}/#room=${ROOM}`);
    const link = await page.waitForSelector(tid('oidc-link'));
    const text = (await link.textContent()).trim();
    assert(text.includes(LABEL), `the link says ${JSON.stringify(text)}`);
  });

  await check('the link goes to the provider, its login brings the user back signed in', async () => {
    await page.click(tid('oidc-link'));
    await page.waitForSelector('#username');
    assert(!page.url().startsWith(`${BASE}/`), `still on Parley at ${page.url()}`);
    await page.fill('#username', USER);
    await page.fill('#password', PASSWORD);
    await page.click('button[type=submit]');
    await page.waitForURL((u) => u.href.startsWith(`${BASE}/`) && !u.pathname.startsWith('/auth/'));
    await page.waitForSelector(tid('user-name'));
    const who = (await page.textContent(tid('user-name'))).trim();
    assert(who === USER, `header shows ${JSON.stringify(who)}, want ${USER}`);
    assert(!new URL(page.url()).searchParams.has('oidc_error'), `landed on ${page.url()}`);
    assert(await page.isHidden(tid('user-guest')), 'the provider user is marked a guest');
  });

  await check('the provider user chats like anyone', async () => {
    await joinRoom(page, ROOM);
    await waitLive(page, 'ws');
    const text = `hello from ${USER} ${suffix}`;
    await send(page, text);
    const m = await waitForText(page, text);
    assert(m.user === USER && Number.isInteger(m.seq), `message ${JSON.stringify(m)}`);
  });

  await finalChecks(2);
}

await run(main, 90_000);
