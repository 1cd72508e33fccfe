// The sign-in page: a guest's name (POST /api/session {name}), an account's
// password (POST /api/session {name, password}) or a new account (POST
// /api/accounts), each a tab; then reload. The server sets an HttpOnly
// cookie, so every later request, the WebSocket and the EventSource
// authenticate by cookie alone.
//
// Every error is shown under the field it is about: a taken name (409) and a
// refused name under the name, a refused password and a wrong one (401)
// under the password; what concerns no field (429, the server down) under
// the form.

import { api } from './api.js';
import { $, byTestId } from './dom.js';
import { errorText, t } from './i18n.js';
import { ENDED_PARAM } from './session.js';

const MIN_PASSWORD = 10; // code points, as the server counts (PROTOCOL.md)
const MAX_PASSWORD = 200;

const codePoints = (s) => [...s].length;

export function initSignIn() {
  showEnded();
  bindTabs();
  bindForm('signin-form', guestForm);
  bindForm('password-form', passwordForm);
  bindForm('account-form', accountForm);
}

/** A session that ended brought the user here with ?ended=1: say so. */
function showEnded() {
  if (!new URLSearchParams(location.search).has(ENDED_PARAM)) return;
  const box = byTestId('signin-notice');
  box.textContent = t('signin.ended');
  box.hidden = false;
}

/** The tabs (WAI-ARIA tabs pattern): a click or the arrow keys select one and show its form. */
function bindTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute('aria-controls')).hidden = !on;
    }
    tab.focus();
    $('input', document.getElementById(tab.getAttribute('aria-controls')))?.focus();
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener('click', () => select(tab));
    tab.addEventListener('keydown', (ev) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[ev.key];
      if (!step) return;
      ev.preventDefault();
      select(tabs[(i + step + tabs.length) % tabs.length]);
    });
  });
}

/**
 * A form's fields: each input with the error line under it. show(field,
 * msg) puts msg under that field ('' clears it); typing in a field clears
 * its error and the form's.
 */
function fields(form, spec) {
  const f = {};
  for (const [key, [input, error]] of Object.entries(spec)) f[key] = { input: input && byTestId(input, form), error: byTestId(error, form) };
  const show = (key, msg) => {
    const { input, error } = f[key];
    error.textContent = msg;
    error.hidden = !msg;
    input?.setAttribute('aria-invalid', msg ? 'true' : 'false');
    if (msg) (input || $('input', form)).focus();
  };
  const clear = () => Object.keys(f).forEach((k) => show(k, ''));
  for (const key of Object.keys(f)) f[key].input?.addEventListener('input', () => {
    show(key, '');
    if (f.form && key !== 'form') show('form', '');
  });
  return { f, show, clear };
}

/**
 * bindForm runs `make(form)` for the form with that test id, if the page
 * has it. make returns the submit step: it checks what it can, calls the
 * server, and resolves true once signed in; otherwise it has shown why.
 */
function bindForm(testId, make) {
  const form = byTestId(testId);
  if (!form) return; // that way to sign in is off on this server
  const button = $('button[type="submit"]', form);
  const run = make(form);
  // The page renders the button disabled: a click before this module has
  // bound the form would submit it as a plain GET and lose the name.
  button.disabled = false;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    try {
      if (await run()) enter();
      else button.disabled = false;
    } catch (err) {
      console.error('parley: sign-in', err);
      button.disabled = false;
    }
  });
}

/** enter opens the chat: the same address, without ?ended, which would say the session ended. */
function enter() {
  const u = new URL(location.href);
  u.searchParams.delete(ENDED_PARAM);
  if (u.href === location.href) location.reload(); // keeps the #room=... hash
  else location.replace(u.href);
}

function guestForm(form) {
  const { f, show, clear } = fields(form, { name: ['signin-name', 'signin-error'], form: [null, 'signin-form-error'] });
  return async () => {
    clear();
    const name = f.name.input.value.trim();
    if (!name) return show('name', t('signin.err.enterName'));
    try {
      // The answer also carries the token, but the HttpOnly cookie the server
      // sets is what this page uses from now on.
      await api('POST', '/api/session', { name });
      return true;
    } catch (err) {
      return show(fieldOf(err, 'name'), errorText(err)); // the server's own words, e.g. why a name is refused, in the page's language
    }
  };
}

function passwordForm(form) {
  const { f, show, clear } = fields(form, {
    name: ['password-name', 'password-name-error'],
    password: ['signin-password', 'password-error'],
    form: [null, 'password-form-error'],
  });
  return async () => {
    clear();
    const name = f.name.input.value.trim();
    const password = f.password.input.value;
    if (!name) return show('name', t('signin.err.yourName'));
    if (!password) return show('password', t('signin.err.password'));
    try {
      await api('POST', '/api/session', { name, password });
      return true;
    } catch (err) {
      return show(fieldOf(err, 'password'), errorText(err));
    }
  };
}

function accountForm(form) {
  const { f, show, clear } = fields(form, {
    name: ['account-name', 'account-name-error'],
    password: ['account-password', 'account-password-error'],
    confirm: ['account-confirm', 'account-confirm-error'],
    form: [null, 'account-form-error'],
  });
  return async () => {
    clear();
    const name = f.name.input.value.trim();
    const password = f.password.input.value;
    const n = codePoints(password);
    if (!name) return show('name', t('signin.err.chooseName'));
    if (n < MIN_PASSWORD || n > MAX_PASSWORD) {
      return show('password', t('signin.err.passwordLength', { min: MIN_PASSWORD, max: MAX_PASSWORD, n }));
    }
    if (f.confirm.input.value !== password) return show('confirm', t('signin.err.confirm'));
    try {
      await api('POST', '/api/accounts', { name, password });
      return true;
    } catch (err) {
      return show(fieldOf(err, 'name'), errorText(err));
    }
  };
}

/**
 * fieldOf tells which field a refusal is about: a taken name (409) is the
 * name's, a wrong password (401) the password's, a refused request (400)
 * the field its message names (else `fallback`), the rest the form's.
 */
function fieldOf(err, fallback) {
  if (err.status === 409) return 'name';
  if (err.status === 401) return 'password';
  if (err.status === 400) {
    if (/^password\b/i.test(err.message)) return 'password';
    if (/^name\b/i.test(err.message)) return 'name';
    return fallback;
  }
  return 'form';
}
