// Where the login page sends the user back to, without becoming an open redirect.

/** The login page's own path. */
export const LOGIN_PATH = '/login';

/** Where a user lands after login when no (valid) return path was given. */
export const DEFAULT_PATH = '/applications';

/**
 * Accepts only same-origin absolute paths ("/x?y"): anything with a scheme, a host ("//evil"),
 * a backslash (browsers treat "/\evil" as "//evil") or control characters falls back to the
 * default, and so does the login page itself (which would loop).
 */
export function safeReturnPath(raw: string | null | undefined): string {
  if (!raw) return DEFAULT_PATH;
  if (!raw.startsWith('/') || raw.startsWith('//') || raw.includes('\\')) return DEFAULT_PATH;
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return DEFAULT_PATH;
  }
  const pathOnly = raw.split(/[?#]/, 1)[0] ?? '';
  if (pathOnly === LOGIN_PATH || pathOnly.startsWith(`${LOGIN_PATH}/`)) return DEFAULT_PATH;
  return raw;
}

/** The login URL that brings the user back to `current` (path + query) afterwards. */
export function loginPathFor(current: string): string {
  const target = safeReturnPath(current);
  if (target === DEFAULT_PATH) return LOGIN_PATH;
  return `${LOGIN_PATH}?return=${encodeURIComponent(target)}`;
}
