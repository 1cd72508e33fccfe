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

export type ParleyState = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface ParleyEvents {
  message: ParleyMessage;
  state: ParleyState;
  error: ParleyError;
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
  constructor(code: string, message: string, status?: number);
  /** bad_request, unauthorized, rate_limited, unavailable, ..., or timeout / closed from the client. */
  code: string;
  /** The HTTP status, 0 for a WebSocket error frame. */
  status: number;
  /** The room an error frame concerns, when it says. */
  room?: string;
}

export function wsURL(base: string, token?: string): string;
export function eventsURL(base: string, room: string, after: number | null | undefined, token?: string): string;

export class ParleyClient extends EventTarget {
  constructor(options?: ParleyClientOptions);
  readonly state: ParleyState;
  readonly transport: 'ws' | 'sse';
  on<K extends keyof ParleyEvents>(type: K, fn: (detail: ParleyEvents[K]) => void): () => void;
  last(room: string): number | null;
  join(room: string, options?: { after?: number }): Promise<void>;
  leave(room: string): void;
  send(room: string, text: string, options?: { id?: string; budget?: number }): Promise<string>;
  reconnect(): void;
  close(): void;
}
