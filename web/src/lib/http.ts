// Pure rules for how the SPA talks to cairn's API: credentials and the CSRF header.

/** Header the server requires on every state-changing request (with a matching Origin). */
export const CSRF_HEADER = 'X-Cairn-Csrf';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** True for methods that change server state and so must carry the CSRF header. */
export function isStateChanging(method: string): boolean {
  return !SAFE_METHODS.has(method.toUpperCase());
}

/** What `fetch` needs for one API request: same-origin cookies, JSON, CSRF header when required. */
export function buildRequestInit(method: string, body?: unknown): RequestInit {
  const upper = method.toUpperCase();
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (isStateChanging(upper)) headers[CSRF_HEADER] = '1';
  const init: RequestInit = { method: upper, credentials: 'same-origin', headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return init;
}

/** Extracts a human-readable message from an API error body (JSON or text); "" when none. */
export function errorMessageFrom(body: unknown): string {
  if (typeof body === 'string') return body.trim().slice(0, 500);
  if (body && typeof body === 'object') {
    const record = body as Record<string, unknown>;
    for (const key of ['message', 'error', 'detail']) {
      const value = record[key];
      if (typeof value === 'string' && value.trim() !== '') return value.trim().slice(0, 500);
    }
  }
  return '';
}
