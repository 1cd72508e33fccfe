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
  /** '' or absent for a message; 'member' for a membership event; 'edit', 'delete' or 'reaction' for a lifecycle item. */
  kind?: string;
  /** What an item is about: a lifecycle item's target seq, a reaction's emoji and on. */
  data?: { target?: number | string; emoji?: string; on?: boolean; [field: string]: unknown };
  /** The seq of the item this message answers. */
  reply_to?: number;
  /** A message as it stands (history, or fold): when it was last edited, whether it was deleted, who reacted with what. */
  edited_ts?: string;
  deleted?: boolean;
  reactions?: Record<string, string[]>;
  [field: string]: unknown; // extensions of the contract
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
  /** My read position in room moved (any of my connections); over SSE only for rooms whose streams are open. */
  read: { room: string; seq: number };
  /** A member's read position moved, in a direct room or one of at most 100 members that I am joined to. */
  receipt: { room: string; user: string; seq: number };
  /** A mention or direct message not read in time; once per id. */
  notification: ParleyNotification;
}

/** An in-app notification (GET /api/notifications lists the same objects). */
export interface ParleyNotification {
  id: string;
  room: string;
  seq: number;
  from: string;
  text: string;
  kind: 'mention' | 'direct';
  ts: string;
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

export interface ParleyReplyOptions extends ParleySendOptions {
  /** The seq of the item of the room this message answers. */
  replyTo?: number;
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
/** Whether an item is an edit, delete or reaction. */
export function isLifecycle(m: ParleyMessage | null | undefined): boolean;
/** The seq a lifecycle item is about; 0 for any other item. */
export function targetOf(item: ParleyMessage): number;
/** m with lifecycle item `item` applied, by the rule of the server's chat.Message.Fold; m is not changed. */
export function fold(m: ParleyMessage, item: ParleyMessage): ParleyMessage;

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
  /** Sends my read position in room (a read frame, or PUT .../read over SSE); the 'read' event says when it took effect. */
  read(room: string, seq: number): Promise<void>;
  send(room: string, text: string, options?: ParleyReplyOptions): Promise<string>;
  /** Edits my message at seq target (PATCH over SSE); resolves with the id on ack. */
  edit(room: string, target: number, text: string, options?: ParleySendOptions): Promise<string>;
  /** Deletes the message at seq target (DELETE over SSE). */
  delete(room: string, target: number, options?: ParleySendOptions): Promise<string>;
  /** Puts (on, the default) or takes back my reaction emoji on the message at seq target (POST .../reactions over SSE). */
  react(room: string, target: number, emoji: string, on?: boolean, options?: ParleySendOptions): Promise<string>;
  /** With now, the client comes back at once rather than after a backoff. */
  reconnect(options?: { now?: boolean }): void;
  close(): void;
}

/** The messages of one room as they stand, lifecycle items folded in (see parley-client.js). */
export class Timeline {
  constructor(options?: { keep?: number });
  get(seq: number): ParleyMessage | undefined;
  /** upTo: the highest seq of items history already folded into m (default m.seq). */
  add(m: ParleyMessage, options?: { upTo?: number }): ParleyMessage;
  /** The target as it stands after item, or null when nothing held changed (an item about a message not held is kept). */
  apply(item: ParleyMessage): ParleyMessage | null;
  clear(): void;
}
