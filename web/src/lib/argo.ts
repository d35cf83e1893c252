// Pure projections of Argo objects (as the API returns them) onto the rows the lists show.
// Fields are read defensively: the API passes users' objects through unchanged, and any field
// may be missing while an object is being created.

import { runDuration } from './format.ts';

type Json = Record<string, unknown>;

function obj(value: unknown): Json {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : {};
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** The `items` array of a list response; Argo sends `items: null` for an empty list. */
export function listItems(response: unknown): unknown[] {
  const items = obj(response)['items'];
  return Array.isArray(items) ? items : [];
}

/** One row of the Applications list. */
export interface ApplicationRow {
  key: string;
  name: string;
  project: string;
  /** Destination namespace (where the app deploys), not the Application object's own. */
  namespace: string;
  /** Destination cluster: server URL or cluster name. */
  cluster: string;
  repoURL: string;
  /** Path in the repository, or the Helm chart name for chart sources. */
  path: string;
  targetRevision: string;
  /** How many more sources a multi-source Application has beyond the one shown. */
  extraSources: number;
  syncStatus: string;
  healthStatus: string;
}

export function applicationRow(item: unknown): ApplicationRow {
  const metadata = obj(obj(item)['metadata']);
  const spec = obj(obj(item)['spec']);
  const status = obj(obj(item)['status']);
  const sources = Array.isArray(spec['sources']) ? spec['sources'] : [];
  const source = spec['source'] !== undefined ? obj(spec['source']) : obj(sources[0]);
  const extraSources = spec['source'] !== undefined ? 0 : Math.max(0, sources.length - 1);
  const destination = obj(spec['destination']);
  const name = str(metadata['name']);
  return {
    key: `${str(metadata['namespace'])}/${name}`,
    name,
    project: str(spec['project']) || 'default',
    namespace: str(destination['namespace']),
    cluster: str(destination['name']) || str(destination['server']),
    repoURL: str(source['repoURL']),
    path: str(source['path']) || str(source['chart']),
    // Argo treats an empty targetRevision as HEAD, and shows it so.
    targetRevision: str(source['targetRevision']) || 'HEAD',
    extraSources,
    syncStatus: str(obj(status['sync'])['status']) || 'Unknown',
    healthStatus: str(obj(status['health'])['status']) || 'Unknown',
  };
}

/** Rows of the Applications list, sorted by name (then by the Application's namespace). */
export function applicationRows(response: unknown): ApplicationRow[] {
  return listItems(response)
    .map(applicationRow)
    .sort((a, b) => a.name.localeCompare(b.name) || a.key.localeCompare(b.key));
}

/** One row of the Workflows list. */
export interface WorkflowRow {
  key: string;
  name: string;
  namespace: string;
  phase: string;
  startedAt: string;
  finishedAt: string;
  duration: string;
  message: string;
  /** Sort key: start time, or creation time for a workflow that has not started. */
  sortTime: string;
}

export function workflowRow(item: unknown, now: Date): WorkflowRow {
  const metadata = obj(obj(item)['metadata']);
  const status = obj(obj(item)['status']);
  const name = str(metadata['name']);
  const namespace = str(metadata['namespace']);
  const startedAt = str(status['startedAt']);
  const finishedAt = str(status['finishedAt']);
  return {
    key: `${namespace}/${name}`,
    name,
    namespace,
    // A workflow the controller has not picked up yet has no phase; Argo shows it as Pending.
    phase: str(status['phase']) || 'Pending',
    startedAt,
    finishedAt,
    duration: runDuration(startedAt, finishedAt, now),
    message: str(status['message']),
    sortTime: startedAt || str(metadata['creationTimestamp']),
  };
}

/** Rows of the Workflows list, newest first (as Argo's UI lists them). */
export function workflowRows(response: unknown, now: Date): WorkflowRow[] {
  return listItems(response)
    .map((item) => workflowRow(item, now))
    .sort((a, b) => {
      const ta = Date.parse(a.sortTime);
      const tb = Date.parse(b.sortTime);
      const byTime = (Number.isNaN(tb) ? 0 : tb) - (Number.isNaN(ta) ? 0 : ta);
      return byTime || a.key.localeCompare(b.key);
    });
}

/** Namespaces seen in a list of rows, sorted and without duplicates (for the namespace picker). */
export function namespacesOf(rows: { namespace: string }[]): string[] {
  return [...new Set(rows.map((r) => r.namespace).filter((n) => n !== ''))].sort();
}

/** CSS modifier for a status badge: ok, warn, bad, busy or neutral. */
export function statusTone(status: string): 'ok' | 'warn' | 'bad' | 'busy' | 'neutral' {
  switch (status) {
    case 'Synced':
    case 'Healthy':
    case 'Succeeded':
      return 'ok';
    case 'OutOfSync':
    case 'Suspended':
    case 'Missing':
      return 'warn';
    case 'Degraded':
    case 'Failed':
    case 'Error':
      return 'bad';
    case 'Progressing':
    case 'Running':
    case 'Pending':
      return 'busy';
    default:
      return 'neutral';
  }
}
