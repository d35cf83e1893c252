import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applicationRow,
  applicationRows,
  listItems,
  namespacesOf,
  statusTone,
  workflowRow,
  workflowRows,
} from './argo.ts';

const now = new Date('2024-05-01T10:10:00Z');

test('listItems tolerates null items and non-object responses', () => {
  assert.deepEqual(listItems({ items: null }), []);
  assert.deepEqual(listItems({}), []);
  assert.deepEqual(listItems(null), []);
  assert.deepEqual(listItems('x'), []);
  assert.deepEqual(listItems({ items: [1, 2] }), [1, 2]);
});

test('applicationRow reads a single-source Application', () => {
  const row = applicationRow({
    metadata: { name: 'guestbook', namespace: 'argocd' },
    spec: {
      project: 'demo',
      source: { repoURL: 'https://git.example/apps.git', path: 'guestbook', targetRevision: 'main' },
      destination: { server: 'https://kubernetes.default.svc', namespace: 'guestbook' },
    },
    status: { sync: { status: 'Synced' }, health: { status: 'Healthy' } },
  });
  assert.deepEqual(row, {
    key: 'argocd/guestbook',
    name: 'guestbook',
    project: 'demo',
    namespace: 'guestbook',
    cluster: 'https://kubernetes.default.svc',
    repoURL: 'https://git.example/apps.git',
    path: 'guestbook',
    targetRevision: 'main',
    extraSources: 0,
    syncStatus: 'Synced',
    healthStatus: 'Healthy',
  });
});

test('applicationRow defaults a fresh Application and reads multi-source charts', () => {
  const fresh = applicationRow({ metadata: { name: 'new' }, spec: {} });
  assert.equal(fresh.project, 'default');
  assert.equal(fresh.targetRevision, 'HEAD');
  assert.equal(fresh.syncStatus, 'Unknown');
  assert.equal(fresh.healthStatus, 'Unknown');
  const multi = applicationRow({
    metadata: { name: 'm' },
    spec: {
      sources: [
        { repoURL: 'https://charts.example', chart: 'redis', targetRevision: '1.2.3' },
        { repoURL: 'https://git.example/values.git', ref: 'values' },
      ],
      destination: { name: 'in-cluster', namespace: 'cache' },
    },
  });
  assert.equal(multi.path, 'redis');
  assert.equal(multi.targetRevision, '1.2.3');
  assert.equal(multi.extraSources, 1);
  assert.equal(multi.cluster, 'in-cluster');
  const garbage = applicationRow('not an object');
  assert.equal(garbage.name, '');
});

test('applicationRows sorts by name', () => {
  const rows = applicationRows({
    items: [{ metadata: { name: 'b' } }, { metadata: { name: 'a' } }, { metadata: { name: 'c' } }],
  });
  assert.deepEqual(
    rows.map((r) => r.name),
    ['a', 'b', 'c'],
  );
});

test('workflowRow reads phase, times, duration and message', () => {
  const row = workflowRow(
    {
      metadata: { name: 'train-abc', namespace: 'ml', creationTimestamp: '2024-05-01T09:59:00Z' },
      status: {
        phase: 'Failed',
        startedAt: '2024-05-01T10:00:00Z',
        finishedAt: '2024-05-01T10:01:05Z',
        message: 'child failed',
      },
    },
    now,
  );
  assert.equal(row.key, 'ml/train-abc');
  assert.equal(row.phase, 'Failed');
  assert.equal(row.duration, '1m 5s');
  assert.equal(row.message, 'child failed');
  assert.equal(row.sortTime, '2024-05-01T10:00:00Z');
  const pending = workflowRow({ metadata: { name: 'p', creationTimestamp: '2024-05-01T10:05:00Z' } }, now);
  assert.equal(pending.phase, 'Pending');
  assert.equal(pending.duration, '');
  assert.equal(pending.sortTime, '2024-05-01T10:05:00Z');
});

test('workflowRows lists newest first, running ones measured up to now', () => {
  const rows = workflowRows(
    {
      items: [
        { metadata: { name: 'old', namespace: 'a' }, status: { startedAt: '2024-05-01T08:00:00Z', finishedAt: '2024-05-01T08:00:10Z' } },
        { metadata: { name: 'running', namespace: 'a' }, status: { phase: 'Running', startedAt: '2024-05-01T10:00:00Z' } },
        { metadata: { name: 'undated', namespace: 'b' } },
      ],
    },
    now,
  );
  assert.deepEqual(
    rows.map((r) => r.name),
    ['running', 'old', 'undated'],
  );
  assert.equal(rows[0]?.duration, '10m');
});

test('namespacesOf is sorted and unique, without blanks', () => {
  assert.deepEqual(namespacesOf([{ namespace: 'b' }, { namespace: 'a' }, { namespace: 'b' }, { namespace: '' }]), ['a', 'b']);
});

test('statusTone maps Argo statuses to badge tones', () => {
  assert.equal(statusTone('Synced'), 'ok');
  assert.equal(statusTone('Healthy'), 'ok');
  assert.equal(statusTone('Succeeded'), 'ok');
  assert.equal(statusTone('OutOfSync'), 'warn');
  assert.equal(statusTone('Degraded'), 'bad');
  assert.equal(statusTone('Error'), 'bad');
  assert.equal(statusTone('Running'), 'busy');
  assert.equal(statusTone('Unknown'), 'neutral');
  assert.equal(statusTone('Omitted'), 'neutral');
});
