// TypeScript declarations of parley-client.js (see there for the behaviour).
// web/e2e/client.test.mjs checks that they name every exported member.

/** A message of a room, as the server sends it (shared/PROTOCOL.md). */
export interface ParleyMessage {
  room: string;
  seq: number;
  id: string;
  user: string;
  text: string;
  ts: string;
  [field: string]: unknown; // extensions of the contract (kind, data, reply_to, ...)
}

export type ParleyState = 'connecting' | 'live' | 'reconnecting' | 'offline' | 'closed';

export interface ParleyEvents {
  message: ParleyMessage;
  state: ParleyState;
  /** A (re)join went through; last_seq is null over SSE, which does not say. */
  joined: { room: string; last_seq: number | null };
  /** A subscription ended: reason 'removed' or 'banned' when the server put me out, '' for my own leave. */
  left: { room: string; reason: string };
  /** My place in a room changed (added, a role, a direct room made with me). */
  membership: { room?: string; [field: string]: unknown };
  /** A join was refused (not_found, forbidden, ...); the room is dropped. */
  denied: ParleyError;
  /** The connection was lost: its WebSocket close code, 4000 dropped by the client, 0 an event stream given up. */
  disconnect: { code: number; reason: string };
  /** 'auto' fell back to SSE + POST. */
  transport: 'sse';
  error: ParleyError;
}

export interface ParleySendOptions {
  /** The idempotency key; default a fresh UUID. */
  id?: string;
  /** ms until the send rejects with code 'timeout' (default 60 000). */
  budget?: number;
  /** How many transmissions at most (default no limit within the budget). */
  attempts?: number;
  /** ms without an ack after which a WebSocket transmission goes again (default 0: only on reconnect). */
  ackTimeout?: number;
}

export interface ParleyClientOptions {
  /** The server's base URL; default the page's origin. */
  baseUrl?: string;
  /** A session token; without one the page's cookie is used. */
  token?: string;
  /** 'ws' (default), 'sse' (EventSource + POST), or 'auto' (WebSocket, SSE when it never opens). */
  transport?: 'ws' | 'sse' | 'auto';
}

/** What a failed send or request rejects with: the server's error code and message. */
export class ParleyError extends Error {
  constructor(code: string, message: string, status?: number, key?: string, params?: string[]);
  /** bad_request, unauthorized, rate_limited, unavailable, ..., or from the client: timeout, closed, network (no answer), gap (history lacked a seq). */
  code: string;
  /** The HTTP status, 0 for a WebSocket error frame. */
  status: number;
  /** The room an error frame concerns, when it says. */
  room?: string;
  /** The send an error frame concerns, when it says. */
  id?: string;
  /** The server's stable name for the message, for a translation: the English format it was made from ("text must be at most %d characters"); '' when there is none. */
  key: string;
  /** The values in the message, in the order of key's verbs (["4000"]); [] when none. */
  params: string[];
}

export function wsURL(base: string, token?: string): string;
export function eventsURL(base: string, room: string, after: number | null | undefined, token?: string): string;
/** A v4 UUID, also outside secure contexts. */
export function newId(): string;

export class ParleyClient extends EventTarget {
  constructor(options?: ParleyClientOptions);
  readonly state: ParleyState;
  readonly transport: 'ws' | 'sse';
  /** When the client tries again (ms since the epoch) while it waits out a backoff, else 0. */
  readonly retryAt: number;
  on<K extends keyof ParleyEvents>(type: K, fn: (detail: ParleyEvents[K]) => void): () => void;
  last(room: string): number | null;
  connect(): void;
  join(room: string, options?: { after?: number }): Promise<void>;
  leave(room: string): void;
  send(room: string, text: string, options?: ParleySendOptions): Promise<string>;
  /** With now, the client comes back at once rather than after a backoff. */
  reconnect(options?: { now?: boolean }): void;
  close(): void;
}
