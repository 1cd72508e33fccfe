// The JSON API of shared/PROTOCOL.md: one fetch wrapper and its error type.

import { t } from './i18n.js';

/**
 * An error answer of /api/*: {"error":{"code","message","key","params"}};
 * status 0 = no answer at all. Show it with errorText (i18n.js), which
 * translates its key.
 */
export class ApiError extends Error {
  constructor(status, code, message, key = '', params = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.key = key;
    this.params = params;
  }
  /** Worth trying again later: no answer, rate limited, or the server's fault. */
  get transient() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

let unauthorized = null;

/**
 * onUnauthorized sets what a 401 from any call does (the chat page: back to
 * sign-in). The sign-in page sets nothing: there a 401 is a wrong password.
 */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

/** api calls a JSON endpoint and returns its parsed body (null for 204). */
export async function api(method, path, body) {
  return (await call(method, path, body)).data;
}

/** call is api with the response too: {data, res} (res for its headers). */
export async function call(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (typeof AbortSignal.timeout === 'function') init.signal = AbortSignal.timeout(15_000);
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', t('api.unreachable'));
  }
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch {
      /* not JSON: fall through with data = null */
    }
  }
  if (!res.ok) {
    const e = data && data.error;
    if (res.status === 401) unauthorized?.();
    throw new ApiError(res.status, e?.code || `http_${res.status}`, e?.message || `${res.status} ${res.statusText}`.trim(), e?.key || '', Array.isArray(e?.params) ? e.params : []);
  }
  return { data, res };
}

export const roomPath = (room) => `/api/rooms/${encodeURIComponent(room)}`;
