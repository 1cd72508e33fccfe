// The sign-in page: POST /api/session, then reload. The server sets an
// HttpOnly cookie, so every later request, the WebSocket and the
// EventSource authenticate by cookie alone.

import { api } from './api.js';
import { byTestId } from './dom.js';

export function initSignIn() {
  const form = byTestId('signin-form');
  if (!form) return; // guest sign-in is off: the page only explains that
  const input = byTestId('signin-name');
  const button = byTestId('signin-button');
  const error = byTestId('signin-error');

  const showError = (msg) => {
    error.textContent = msg;
    error.hidden = !msg;
    input.setAttribute('aria-invalid', msg ? 'true' : 'false');
  };
  input.addEventListener('input', () => showError(''));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = input.value.trim();
    if (!name) {
      showError('Please enter a name.');
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      // The answer also carries the token, but the HttpOnly cookie the server
      // sets is what this page uses from now on.
      await api('POST', '/api/session', { name });
      location.reload(); // keeps the #room=... hash
    } catch (err) {
      showError(err.message); // the server's own words, e.g. why a name is refused
      button.disabled = false;
      input.focus();
    }
  });
}
