// The harness of Parley's browser tests (chat.test.mjs, sessions.test.mjs):
// real headless Chromium against a running server, named checks, bounded
// waits, and a watch on every page for uncaught errors, console errors and
// warnings and CSP violations.
//
// Env: PARLEY_URL (required) is a running server with guest sign-in on;
// CHROMIUM (default /usr/bin/chromium) is the browser; nothing is downloaded.
// PARLEY_LANG (en, the default, or ko) is the language of the browser: every
// context gets its locale (so Accept-Language asks for it), and the scripts
// expect the strings of static/i18n/<PARLEY_LANG>.json, the catalogue the
// server renders with, through T().
//
// Each named check prints one line; the last line is "N passed, M failed".
// On a failure every page in `pages` is screenshotted into the OS temp dir.
// run() exits non-zero on any failure.
//
// The pages must run under the server's Content-Security-Policy without a
// single violation, and without any console error or warning: every page is
// watched (watch()) and finalChecks() fails on anything seen. The only
// exceptions are the ones a check provokes on purpose, each declared with
// expecting() in that check and accepted only while it runs.

import { chromium } from 'playwright-core';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BASE = (process.env.PARLEY_URL || '').replace(/\/+$/, '');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const WAIT = 10_000; // any single wait
const CHECK_LIMIT = 30_000; // any single check, unless it says otherwise

if (!BASE) {
  console.error('PARLEY_URL is required (the base URL of a running Parley server)');
  process.exit(2);
}

/** The languages of the UI, each with its catalogue; LANG is the one under test. */
export const LANGS = ['en', 'ko'];
export const LANG = process.env.PARLEY_LANG || 'en';
if (!LANGS.includes(LANG)) {
  console.error(`PARLEY_LANG=${LANG}: want one of ${LANGS.join(', ')}`);
  process.exit(2);
}
/** LOCALE is the browser locale for LANG; its Accept-Language asks for LANG. */
export const LOCALE = { en: 'en-US', ko: 'ko-KR' }[LANG];
const catalogues = Object.fromEntries(
  LANGS.map((l) => [l, JSON.parse(readFileSync(new URL(`../../static/i18n/${l}.json`, import.meta.url), 'utf8'))]),
);

/** T is message key of the catalogue of lang (default LANG), each {name} replaced by params[name], as static/js/i18n.js does. */
export function T(key, params = {}, lang = LANG) {
  const s = catalogues[lang][key];
  if (s === undefined) throw new Error(`no message ${key} in ${lang}.json`);
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/** contextOptions are browser.newContext's options for a page in LANG, plus extra. */
export const contextOptions = (extra = {}) => ({ viewport: { width: 1200, height: 800 }, locale: LOCALE, ...extra });

/** A fresh suffix per run, for names of rooms and users no other run uses. */
export const suffix = randomBytes(4).toString('hex');
export const tid = (id) => `[data-testid="${id}"]`;

let passed = 0;
let failed = 0;
let browser;
export const pages = {}; // name -> Page, for screenshots
const pageErrors = []; // uncaught exceptions in the pages
const problems = []; // console errors/warnings and CSP violations no check expected
const expectedSeen = []; // those a check did expect (printed, not failed)
const expectations = []; // active expecting() entries
let documents = 0; // main-frame document responses seen, each checked for the CSP header

function summary() {
  console.log(`${passed} passed, ${failed} failed`);
}

export async function screenshots(label) {
  for (const [name, page] of Object.entries(pages)) {
    const file = join(tmpdir(), `parley-e2e-${suffix}-${label.replace(/[^a-z0-9]+/gi, '-')}-${name}.png`);
    try {
      await page.screenshot({ path: file, timeout: 5_000 });
      console.log(`      screenshot: ${file}`);
    } catch (err) {
      console.log(`      (no screenshot of ${name}: ${err.message.split('\n')[0]})`);
    }
  }
}

/** check runs one named step, bounded in time, and prints its line. */
export async function check(name, fn, { limit = CHECK_LIMIT } = {}) {
  const t0 = Date.now();
  let timer;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${limit / 1000}s`)), limit);
      }),
    ]);
    passed++;
    console.log(`ok    ${name} (${Date.now() - t0} ms)`);
    return true;
  } catch (err) {
    failed++;
    console.log(`FAIL  ${name}: ${String(err.message || err).split('\n')[0]}`);
    await screenshots(name);
    return false;
  } finally {
    clearTimeout(timer);
  }
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

/**
 * expecting runs fn while console errors/warnings on page `page` matching
 * `re` (tested against "text url") are expected: they are listed, not failed.
 * They stay expected for a second after fn, for a message still in flight.
 */
export async function expecting(list, fn) {
  const entries = list.map((e) => ({ ...e, until: Infinity }));
  expectations.push(...entries);
  try {
    return await fn();
  } finally {
    const until = Date.now() + 1000;
    for (const e of entries) e.until = until;
  }
}

/** The CSP the server must send; a page response without it is a problem. */
export function cspProblem(headers) {
  const csp = headers['content-security-policy'];
  if (!csp) return 'no Content-Security-Policy header';
  if (!/(^|;)\s*frame-ancestors 'none'\s*(;|$)/.test(csp)) return `CSP lacks frame-ancestors 'none': ${csp}`;
  if (/unsafe-(inline|eval)/.test(csp)) return `CSP allows unsafe-inline/unsafe-eval: ${csp}`;
  if (!/(^|;)\s*script-src 'self'\s*(;|$)/.test(csp) || !/(^|;)\s*style-src 'self'\s*(;|$)/.test(csp)) {
    return `CSP script-src/style-src are not exactly 'self': ${csp}`;
  }
  return null;
}

/** Records every CSP violation in the page into window.__cspViolations and reports it to node. */
export function recordViolations() {
  window.__cspViolations = [];
  document.addEventListener(
    'securitypolicyviolation',
    (e) => {
      const v = {
        directive: e.effectiveDirective || e.violatedDirective,
        blocked: e.blockedURI,
        source: e.sourceFile,
        line: e.lineNumber,
        sample: e.sample,
        disposition: e.disposition,
      };
      window.__cspViolations.push(v);
      window.__parleyCSPViolation?.(v);
    },
    true,
  );
}

/**
 * watch records, for page `name`: uncaught exceptions (pageErrors), console
 * errors and warnings and CSP violations (into sink, unless expected), and
 * checks that every document it loads carries the CSP header.
 */
export async function watch(name, page, sink = problems) {
  page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
  page.on('console', (msg) => {
    const type = msg.type();
    if (type !== 'error' && type !== 'warning') return;
    const url = msg.location()?.url || '';
    // While the page is at an identity provider, its console is the
    // provider's business.
    if (!page.url().startsWith(`${BASE}/`) || (url && !url.startsWith(`${BASE}/`) && !url.startsWith(BASE.replace(/^http/, 'ws')))) return;
    const line = `${name}: console.${type}: ${msg.text()}${url ? ` (${url})` : ''}`;
    const now = Date.now();
    const e = sink === problems && expectations.find((x) => x.page === name && now <= x.until && x.re.test(`${msg.text()} ${url}`));
    if (e) expectedSeen.push(`${line} [${e.why}]`);
    else sink.push(line);
  });
  page.on('response', (res) => {
    if (!res.request().isNavigationRequest() || res.frame() !== page.mainFrame()) return;
    // Parley's pages only: an identity provider's are its own business.
    if (!res.url().startsWith(`${BASE}/`)) return;
    documents++;
    const p = cspProblem(res.headers());
    if (p) sink.push(`${name}: ${res.url()}: ${p}`);
  });
  await page.exposeBinding('__parleyCSPViolation', (_source, v) => sink.push(`${name}: CSP violation: ${JSON.stringify(v)}`));
  await page.addInitScript(recordViolations);
}

/** waitFor polls fn (in node) until it returns a truthy value, or fails with msg. */
export async function waitFor(fn, msg, timeout = WAIT) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err.message;
    }
    if (Date.now() > end) throw new Error(`${msg} (waited ${timeout / 1000}s; last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Messages as the page shows them, in DOM order. */
export function messages(page) {
  return page.$$eval(tid('message'), (lis) =>
    lis.map((li) => ({
      id: li.dataset.id,
      seq: li.dataset.seq ? Number(li.dataset.seq) : null,
      state: li.dataset.state,
      user: li.querySelector('[data-testid="message-user"]')?.textContent,
      text: li.querySelector('[data-testid="message-text"]')?.textContent,
    })),
  );
}

export async function waitForText(page, text, { state = 'delivered' } = {}, timeout = WAIT) {
  return waitFor(async () => (await messages(page)).find((m) => m.text === text && m.state === state), `message ${JSON.stringify(text)} (${state})`, timeout);
}

export async function connState(page) {
  return page.$eval(tid('conn-state'), (e) => ({ state: e.dataset.state, transport: e.dataset.transport, text: e.textContent.trim() }));
}

export async function waitLive(page, transport) {
  return waitFor(async () => {
    const s = await connState(page);
    return s.state === 'live' && s.transport === transport && s;
  }, `connection live over ${transport}`);
}

export async function signIn(page, name) {
  await page.fill(tid('signin-name'), name);
  await page.click(tid('signin-button'));
  await page.waitForSelector(tid('user-name'), { timeout: WAIT });
  const shown = (await page.textContent(tid('user-name'))).trim();
  assert(shown === name, `header shows ${JSON.stringify(shown)}, want ${name}`);
}

export async function joinRoom(page, room) {
  await page.fill(tid('room-input'), room);
  await page.click(tid('room-join'));
  await waitFor(async () => (await page.textContent(tid('room-title'))).includes(room), `room title shows ${room}`);
  await page.waitForSelector(`${tid('room-item')}[data-room="${room}"]`, { timeout: WAIT });
  assert(new URL(page.url()).hash === `#room=${room}`, `URL hash is ${new URL(page.url()).hash}`);
}

export async function send(page, text, { enter = false } = {}) {
  await page.fill(tid('message-input'), text);
  if (enter) await page.press(tid('message-input'), 'Enter');
  else await page.click(tid('send-button'));
}

/** Seqs shown are strictly increasing (order kept, no duplicates). */
export async function assertOrdered(page, who) {
  const seqs = (await messages(page)).filter((m) => m.seq !== null).map((m) => m.seq);
  for (let i = 1; i < seqs.length; i++) assert(seqs[i] > seqs[i - 1], `${who}: seq ${seqs[i]} after ${seqs[i - 1]}`);
  return seqs;
}

/** launch starts Chromium; run() closes it. */
export async function launch() {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    timeout: WAIT * 3,
    // The background-networking flags matter: without them Chromium's own
    // connections are refused by this machine's closed network.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return browser;
}

/**
 * newPage opens a watched page named `name`: in `context` when given (a
 * tab of the same browser profile), else in a new context (options as
 * browser.newContext's).
 */
export async function newPage(name, { context, ...options } = {}) {
  const ctx = context || (await browser.newContext(contextOptions(options)));
  const page = (pages[name] = await ctx.newPage());
  page.setDefaultTimeout(WAIT);
  await watch(name, page);
  return page;
}

/** finalChecks fails the run on anything the watch saw that no check expected; at least minDocuments page loads must have been checked. */
export async function finalChecks(minDocuments) {
  await check('no uncaught errors in the pages', async () => {
    assert(pageErrors.length === 0, pageErrors.join('; '));
  });

  await check('no CSP violation, no console error or warning, every page with its CSP', async () => {
    for (const line of expectedSeen) console.log(`      expected: ${line}`);
    assert(documents >= minDocuments, `only ${documents} page loads were checked for the CSP header`);
    for (const line of problems.slice(0, 10)) console.log(`      ${line}`);
    assert(problems.length === 0, `${problems.length} seen, first: ${problems[0]}`);
  });
}

/**
 * run runs main within `total` ms, whatever hangs: then it reports, closes
 * the browser and exits, non-zero on any failure.
 */
export async function run(main, total) {
  const watchdog = setTimeout(async () => {
    console.log(`FAIL  run: did not finish within ${total / 1000}s`);
    failed++;
    await screenshots('timeout');
    summary();
    process.exit(1);
  }, total);
  try {
    await main();
  } catch (err) {
    failed++;
    console.log(`FAIL  setup: ${String(err.message || err).split('\n')[0]}`);
    await screenshots('setup');
  } finally {
    clearTimeout(watchdog);
    await browser?.close().catch(() => {});
  }
  summary();
  process.exit(failed > 0 ? 1 : 0);
}
