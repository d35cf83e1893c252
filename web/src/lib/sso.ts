// What the login page offers, from `GET /auth/info`: single sign-on (and its one error when the
// provider is misconfigured) and whether the local password form is shown at all.

import { safeReturnPath } from './returnPath.ts';

/** The login page's choices, read from `/auth/info`. */
export interface LoginOptions {
  /** SSO is configured and its provider answered discovery: show "Log in via <name>". */
  sso: { name: string; loginURL: string } | null;
  /** SSO is configured but unusable: the one error the server reports (local login still works). */
  ssoError: string;
  /** Show the username/password form (false only when the server says no local login exists). */
  localLogin: boolean;
}

/** When `/auth/info` could not be read (an old server, a network error): the password form only. */
export const LOCAL_ONLY: LoginOptions = { sso: null, ssoError: '', localLogin: true };

function text(value: unknown): string {
  return typeof value === 'string' ? value.trim() : '';
}

/**
 * Reads the body of `GET /auth/info`. Anything unexpected degrades to the password form, never
 * to a page without a way to log in: the form is hidden only when SSO is usable and the server
 * says user logins are disabled.
 */
export function loginOptions(body: unknown): LoginOptions {
  if (!body || typeof body !== 'object') return LOCAL_ONLY;
  const info = body as Record<string, unknown>;
  const usersDisabled = info['userLoginsDisabled'] === true;
  if (info['enabled'] !== true) return LOCAL_ONLY;
  const name = text(info['name']) || 'SSO';
  const loginURL = text(info['loginURL']);
  // Only a same-origin path: the page links to it.
  const path = loginURL.startsWith('/') && !loginURL.startsWith('//') ? loginURL : '/auth/login';
  if (info['ready'] === true) {
    return { sso: { name, loginURL: path }, ssoError: '', localLogin: !usersDisabled };
  }
  const error = text(info['error']) || `${name} is configured but not reachable yet.`;
  return { sso: null, ssoError: `Single sign-on is unavailable: ${error}`, localLogin: true };
}

/** The SSO link: the server's login route with where to come back to (a checked same-origin path). */
export function ssoLoginHref(loginURL: string, returnTo: string): string {
  const separator = loginURL.includes('?') ? '&' : '?';
  return `${loginURL}${separator}return_url=${encodeURIComponent(safeReturnPath(returnTo))}`;
}

/**
 * Where the browser goes after `POST /auth/logout`: the provider's logout URL (an absolute
 * http(s) URL the server was configured with) leaves the app; anything else is an in-app path,
 * and anything odd is the login page.
 */
export function logoutTarget(body: unknown): { external: string } | { path: string } {
  const redirect =
    body && typeof body === 'object' ? text((body as Record<string, unknown>)['redirect']) : '';
  if (/^https?:\/\//i.test(redirect)) return { external: redirect };
  if (redirect.startsWith('/') && !redirect.startsWith('//') && !redirect.includes('\\')) {
    return { path: redirect };
  }
  return { path: '/login' };
}
