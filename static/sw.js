// Parley's service worker, for Web Push only (static/js/push.js registers
// it). The server serves it at /sw.js, so that its scope is the whole page.
// It caches nothing: the page is always the server's.
//
// A push's payload is the notification as JSON: {id, room, seq, from, text,
// kind, ts, title}. It is shown under its id as tag (a repeat replaces it
// rather than stacking); a click focuses a Parley tab (or opens one) at
// /?room=<room>&seq=<seq>, which the page opens at that message (a tab
// open already is told by a message to go there).

self.addEventListener('push', (event) => {
  let n = {};
  try {
    n = event.data ? event.data.json() : {};
  } catch {
    n = { text: event.data ? event.data.text() : '' };
  }
  const title = n.title || 'Parley';
  event.waitUntil(
    self.registration.showNotification(title, {
      body: n.text || '',
      tag: n.id || undefined,
      icon: '/static/icon.svg',
      data: { room: n.room, seq: n.seq },
    }),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const { room, seq } = event.notification.data || {};
  const url = new URL('/', self.location.origin);
  if (typeof room === 'string' && room) url.searchParams.set('room', room);
  if (Number.isInteger(seq)) url.searchParams.set('seq', String(seq));
  event.waitUntil(
    (async () => {
      const tabs = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      // The tab in front, else a visible one, else any of Parley's.
      const ours = tabs.filter((c) => new URL(c.url).origin === self.location.origin);
      const tab = ours.find((c) => c.focused) || ours.find((c) => c.visibilityState === 'visible') || ours[0];
      if (tab) {
        // The open tab goes to the message itself (static/js/push.js
        // listens), keeping its connection rather than reloading.
        tab.postMessage({ type: 'parley-open', room, seq });
        return tab.focus();
      }
      return self.clients.openWindow(url.href);
    })(),
  );
});
