// The API client: every request goes through `request`, which applies the credential and CSRF
// rules of lib/http.ts and turns failures into ApiError.

import { buildRequestInit, errorMessageFrom } from './lib/http.ts';

/** A failed API call: HTTP status (0 when the server could not be reached) and a message. */
export class ApiError extends Error {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Headers | undefined;

  constructor(status: number, message: string, body: unknown, headers?: Headers) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text === '') return undefined;
  const type = response.headers.get('Content-Type') ?? '';
  if (type.includes('json')) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}

/** Sends one API request and returns the parsed JSON body, or throws ApiError. */
export async function request(method: string, path: string, body?: unknown): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(path, buildRequestInit(method, body));
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new ApiError(0, `Could not reach the cairn server (${detail}).`, undefined);
  }
  const parsed = await readBody(response);
  if (!response.ok) {
    const detail = errorMessageFrom(parsed);
    const message = detail || `${response.status} ${response.statusText}`.trim();
    throw new ApiError(response.status, message, parsed, response.headers);
  }
  return parsed;
}

/** What `GET /api/v1/session/userinfo` answers. */
export interface UserInfo {
  loggedIn: boolean;
  username: string;
  groups: string[];
}

export async function getUserInfo(): Promise<UserInfo> {
  const body = (await request('GET', '/api/v1/session/userinfo')) as Partial<UserInfo> | undefined;
  return {
    loggedIn: body?.loggedIn === true,
    username: typeof body?.username === 'string' ? body.username : '',
    groups: Array.isArray(body?.groups) ? body.groups.filter((g) => typeof g === 'string') : [],
  };
}

export async function login(username: string, password: string): Promise<void> {
  await request('POST', '/api/v1/session', { username, password });
}

/** Ends the session (`POST /auth/logout`); answers where the browser goes next (see logoutTarget). */
export async function logout(): Promise<unknown> {
  return request('POST', '/auth/logout');
}

/** What the login page offers (`GET /auth/info`: SSO and whether local login exists). */
export function getAuthInfo(): Promise<unknown> {
  return request('GET', '/auth/info');
}

/** Starts a sync of one Application (`path` from lib/sync.ts syncPath). */
export function syncApplication(path: string): Promise<unknown> {
  return request('POST', path, {});
}

export function listApplications(): Promise<unknown> {
  return request('GET', '/api/v1/applications');
}

/** Lists workflows in one namespace, or in all namespaces when `namespace` is empty. */
export function listWorkflows(namespace: string): Promise<unknown> {
  const path =
    namespace === '' ? '/api/v1/workflows' : `/api/v1/workflows/${encodeURIComponent(namespace)}`;
  return request('GET', path);
}
