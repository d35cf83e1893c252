// The Sync action of the Applications list: which request it sends and what the page says after.

/**
 * `POST` path that syncs the Application whose row key is `<its namespace>/<name>` (see
 * applicationRow): the namespace goes as `appNamespace` when the row has one.
 */
export function syncPath(key: string): string {
  const slash = key.indexOf('/');
  const namespace = slash > 0 ? key.slice(0, slash) : '';
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  const path = `/api/v1/applications/${encodeURIComponent(name)}/sync`;
  return namespace === '' ? path : `${path}?appNamespace=${encodeURIComponent(namespace)}`;
}

/** What the page shows after a sync request, one line per application. */
export interface SyncOutcome {
  kind: 'started' | 'forbidden' | 'failed';
  message: string;
}

/** The outcome of `POST …/sync`: 2xx started the operation; 403 is RBAC's no; else the server's words. */
export function syncOutcome(name: string, status: number, detail: string): SyncOutcome {
  if (status >= 200 && status < 300) {
    return { kind: 'started', message: `Sync of ${name} started.` };
  }
  if (status === 403) {
    return {
      kind: 'forbidden',
      message: `Not permitted: your account may not sync ${name} (HTTP 403). Ask an administrator for a role that grants sync.`,
    };
  }
  const why = detail.trim() || (status === 0 ? 'the server could not be reached' : `HTTP ${status}`);
  return { kind: 'failed', message: `Sync of ${name} failed: ${why}` };
}
