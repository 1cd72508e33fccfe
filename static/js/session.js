// The session ends: by the server (signedOut) or by the user (signOut).

import { api } from './api.js';
import { notice } from './notice.js';
import { conn } from './transport.js';

export function signedOut() {
  conn.stop();
  conn.setState('signedout');
  notice('Your session has ended.', { kind: 'error', sticky: true, action: { label: 'Sign in again', run: () => location.reload() } });
}

/** signOut ends the session on the server, then reloads to the sign-in page. */
export async function signOut(button) {
  button.disabled = true;
  try {
    await api('DELETE', '/api/session');
  } catch (err) {
    notice(`Could not sign out: ${err.message}`, { kind: 'error' });
    button.disabled = false;
    return;
  }
  conn.stop();
  location.reload();
}
