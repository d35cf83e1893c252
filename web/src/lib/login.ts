// Turns a failed login response into the message the login page shows.

import { errorMessageFrom } from './http.ts';
import { formatDuration } from './format.ts';

/** What went wrong with a login attempt, as the page shows it. */
export interface LoginFailure {
  kind: 'invalid' | 'locked' | 'other';
  message: string;
}

/**
 * Seconds until a locked account may try again, from the `Retry-After` header (seconds or an
 * HTTP date) or the body (`retryAfterSeconds`, `retryAfter` in seconds, or `lockedUntil` as
 * RFC 3339). Undefined when the server did not say.
 */
export function retryAfterSeconds(
  retryAfterHeader: string | null,
  body: unknown,
  now: Date,
): number | undefined {
  const fromHeader = parseRetryAfter(retryAfterHeader, now);
  if (fromHeader !== undefined) return fromHeader;
  if (body && typeof body === 'object') {
    const record = body as Record<string, unknown>;
    for (const key of ['retryAfterSeconds', 'retryAfter', 'retry_after_seconds']) {
      const value = record[key];
      if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return Math.ceil(value);
    }
    const until = record['lockedUntil'] ?? record['locked_until'];
    if (typeof until === 'string') {
      const at = Date.parse(until);
      if (!Number.isNaN(at)) return Math.max(0, Math.ceil((at - now.getTime()) / 1000));
    }
  }
  return undefined;
}

function parseRetryAfter(value: string | null, now: Date): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now.getTime()) / 1000));
}

/** True when the server said the account is locked (status 423/429, or a body that says so). */
function looksLocked(status: number, body: unknown): boolean {
  if (status === 423 || status === 429) return true;
  const text = errorMessageFrom(body).toLowerCase();
  return text.includes('locked') || text.includes('too many');
}

/** Classifies a failed `POST /api/v1/session` response into the message to show. */
export function describeLoginFailure(
  status: number,
  retryAfterHeader: string | null,
  body: unknown,
  now: Date,
): LoginFailure {
  if (looksLocked(status, body)) {
    const seconds = retryAfterSeconds(retryAfterHeader, body, now);
    const when =
      seconds === undefined
        ? 'Try again later.'
        : `Try again in ${formatDuration(Math.max(seconds, 1) * 1000)}.`;
    return {
      kind: 'locked',
      message: `This account is temporarily locked after too many failed logins. ${when}`,
    };
  }
  if (status === 401 || status === 403 || status === 400) {
    return { kind: 'invalid', message: 'Invalid username or password.' };
  }
  const detail = errorMessageFrom(body);
  return {
    kind: 'other',
    message: detail
      ? `Login failed (HTTP ${status}): ${detail}`
      : `Login failed (HTTP ${status}). Is the cairn server running?`,
  };
}
