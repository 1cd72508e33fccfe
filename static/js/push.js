// Browser push (Web Push), opted into from the bell's panel: the service
// worker /sw.js (served by the binary at the root, so that its scope is the
// whole page) subscribes with the server's VAPID key and the subscription
// is given to the server; turning it off unsubscribes and tells the server.
// The button shows only when the server has push (GET /api/push/vapid
// answers) and the browser has PushManager; the server is asked once, the
// first time the panel opens (a server without push answers 404).

import { api } from './api.js';
import { t } from './i18n.js';
import { notice } from './notice.js';
import { ui } from './ui.js';

let key = undefined; // the VAPID public key; null: no push here
let busy = false;

const supported = () => 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;

/** keyBytes decodes the base64url key for applicationServerKey. */
function keyBytes(b64url) {
  const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(b64url.length / 4) * 4, '=');
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

async function subscription() {
  const reg = await navigator.serviceWorker.getRegistration('/');
  return reg ? reg.pushManager.getSubscription() : null;
}

async function render() {
  const on = !!(await subscription().catch(() => null));
  ui.pushToggle.hidden = false;
  ui.pushToggle.dataset.on = String(on);
  ui.pushToggle.textContent = on ? t('push.off') : t('push.on');
  ui.pushToggle.disabled = busy;
}

async function turnOn() {
  if ((await Notification.requestPermission()) !== 'granted') {
    notice(t('push.denied'), { kind: 'error' });
    return;
  }
  const reg = await navigator.serviceWorker.register('/sw.js', { scope: '/', type: 'classic' });
  await navigator.serviceWorker.ready;
  const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
  try {
    await api('POST', '/api/push/subscriptions', sub.toJSON());
  } catch (err) {
    await sub.unsubscribe().catch(() => {});
    throw err;
  }
}

async function turnOff() {
  const sub = await subscription();
  if (!sub) return;
  const endpoint = sub.endpoint;
  await sub.unsubscribe();
  await api('DELETE', `/api/push/subscriptions?endpoint=${encodeURIComponent(endpoint)}`);
}

/**
 * onServiceWorkerOpen calls open(room, seq) when the service worker asks
 * this tab to show a message (a click on a push).
 */
export function onServiceWorkerOpen(open) {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.addEventListener('message', (ev) => {
    const d = ev.data;
    if (ev.origin && ev.origin !== location.origin) return;
    if (d?.type === 'parley-open' && typeof d.room === 'string' && Number.isInteger(d.seq)) open(d.room, d.seq);
  });
  navigator.serviceWorker.startMessages(); // queued until now
}

/** bindPush shows the push button when both ends can (asked once, when the bell's panel first opens). */
export async function bindPush() {
  if (key !== undefined || !supported()) return;
  key = null;
  try {
    key = (await api('GET', '/api/push/vapid'))?.public_key || null;
  } catch {
    key = null; // no push on this server
  }
  if (!key) return;
  ui.pushToggle.addEventListener('click', async () => {
    if (busy) return;
    busy = true;
    ui.pushToggle.disabled = true;
    try {
      if (ui.pushToggle.dataset.on === 'true') await turnOff();
      else await turnOn();
    } catch (err) {
      notice(t('push.failed', { error: err.message }), { kind: 'error' });
    } finally {
      busy = false;
      render();
    }
  });
  render();
}
