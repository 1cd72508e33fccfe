// A program using the client library, type-checked against
// static/js/parley-client.d.ts by client.test.mjs (tsc --noEmit): a
// declaration that drifts from how the module is used fails the check.
import { ParleyClient, ParleyError, Timeline, eventsURL, fold, isLifecycle, newId, targetOf, wsURL } from '../../../static/js/parley-client.js';
import type { ParleyMessage, ParleyNotification, ParleyState } from '../../../static/js/parley-client.js';

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
  c.on('read', ({ room, seq }) => console.log(room, seq.toFixed(0)));
  c.on('receipt', ({ room, user, seq }) => console.log(room, user, seq));
  c.on('notification', (n: ParleyNotification) => console.log(n.id, n.room, n.seq, n.from, n.text, n.kind === 'direct', n.ts));
  c.connect();
  const wait: number = c.retryAt && c.retryAt - Date.now();
  await c.join('general', { after: 0 });
  const id: string = await c.send('general', 'hello', { id: newId(), budget: 5000, attempts: 3, ackTimeout: 1000 });
  const reply: string = await c.send('general', 'yes', { replyTo: 1, ackTimeout: 1000 });
  await c.edit('general', 1, 'hello again', { id: newId() });
  await c.react('general', 1, '👍');
  await c.react('general', 1, '👍', false, { attempts: 2 });
  await c.delete('general', 1);
  const tl = new Timeline({ keep: 100 });
  c.on('message', (m) => {
    if (isLifecycle(m)) {
      const now: ParleyMessage | null = tl.apply(m);
      console.log(targetOf(m), now?.text, now?.edited_ts, now?.deleted, now?.reactions?.['👍']?.length);
    } else tl.add(m, { upTo: m.seq });
  });
  const m0: ParleyMessage | undefined = tl.get(1);
  if (m0) console.log(fold(m0, m0).reply_to);
  tl.clear();
  const last: number | null = c.last('general');
  const mode: 'ws' | 'sse' = c.transport;
  console.log(id, reply, last, mode, c.state, wait, wsURL('http://x'), eventsURL('http://x', 'general', 3, 't'));
  try {
    await c.send('general', 'x'.repeat(4001));
  } catch (err) {
    if (err instanceof ParleyError) console.log(err.code);
  }
  c.reconnect();
  c.reconnect({ now: true });
  await c.read('general', 3);
  c.leave('general');
  off();
  c.close();
}
