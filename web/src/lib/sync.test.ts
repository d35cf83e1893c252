import { test } from 'node:test';
import assert from 'node:assert/strict';
import { syncOutcome, syncPath } from './sync.ts';

test('syncPath names the application and its namespace', () => {
  assert.equal(syncPath('argocd/guestbook'), '/api/v1/applications/guestbook/sync?appNamespace=argocd');
  assert.equal(syncPath('/guestbook'), '/api/v1/applications/guestbook/sync');
  assert.equal(syncPath('guestbook'), '/api/v1/applications/guestbook/sync');
  assert.equal(syncPath('team a/x?y'), '/api/v1/applications/x%3Fy/sync?appNamespace=team%20a');
});

test('syncOutcome tells started, forbidden and failed apart', () => {
  assert.deepEqual(syncOutcome('guestbook', 200, ''), { kind: 'started', message: 'Sync of guestbook started.' });
  const no = syncOutcome('guestbook', 403, 'permission denied');
  assert.equal(no.kind, 'forbidden');
  assert.match(no.message, /^Not permitted: your account may not sync guestbook \(HTTP 403\)/);
  assert.deepEqual(syncOutcome('guestbook', 409, 'another operation is already in progress'), {
    kind: 'failed',
    message: 'Sync of guestbook failed: another operation is already in progress',
  });
  assert.equal(syncOutcome('g', 0, '').message, 'Sync of g failed: the server could not be reached');
  assert.equal(syncOutcome('g', 500, '').message, 'Sync of g failed: HTTP 500');
});
