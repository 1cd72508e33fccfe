// A program using the client library, type-checked against
// static/js/parley-client.d.ts by client.test.mjs (tsc --noEmit): a
// declaration that drifts from how the module is used fails the check.
import { ParleyClient, ParleyError, eventsURL, newId, wsURL } from '../../../static/js/parley-client.js';
import type { ParleyMessage, ParleyState } from '../../../static/js/parley-client.js';

export async function usage(): Promise<void> {
  const c = new ParleyClient({ baseUrl: 'http://127.0.0.1:8080', token: 't', transport: 'auto' });
  const off = c.on('message', (m: ParleyMessage) => console.log(m.room, m.seq, m.user, m.text));
  c.on('state', (s: ParleyState) => console.log(s));
  c.on('error', (e: ParleyError) => console.log(e.code, e.status, e.room, e.id, e.key?.length, e.params?.join(', ')));
  c.on('joined', ({ room, last_seq }) => console.log(room, last_seq === null ? 'sse' : last_seq + 1));
  c.on('left', ({ room, reason }: { room: string; reason: string }) => console.log(room, reason || 'my own leave'));
  c.on('membership', (f) => console.log(f.room));
  c.on('denied', (e: ParleyError) => console.log(e.room, e.code));
  c.on('disconnect', ({ code, reason }) => console.log(code.toFixed(0), reason));
  c.on('transport', (t: 'sse') => console.log(t));
  c.connect();
  const wait: number = c.retryAt && c.retryAt - Date.now();
  await c.join('general', { after: 0 });
  const id: string = await c.send('general', 'hello', { id: newId(), budget: 5000, attempts: 3, ackTimeout: 1000 });
  const last: number | null = c.last('general');
  const mode: 'ws' | 'sse' = c.transport;
  console.log(id, last, mode, c.state, wait, wsURL('http://x'), eventsURL('http://x', 'general', 3, 't'));
  try {
    await c.send('general', 'x'.repeat(4001));
  } catch (err) {
    if (err instanceof ParleyError) console.log(err.code);
  }
  c.reconnect();
  c.reconnect({ now: true });
  c.leave('general');
  off();
  c.close();
}
