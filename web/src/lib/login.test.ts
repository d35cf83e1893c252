import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeLoginFailure, retryAfterSeconds } from './login.ts';

const now = new Date('2024-05-01T10:00:00Z');

test('wrong credentials read as invalid username or password', () => {
  const failure = describeLoginFailure(401, null, { error: 'invalid credentials' }, now);
  assert.equal(failure.kind, 'invalid');
  assert.equal(failure.message, 'Invalid username or password.');
});

test('a locked account says so with the time left from Retry-After seconds', () => {
  const failure = describeLoginFailure(429, '300', { error: 'account locked' }, now);
  assert.equal(failure.kind, 'locked');
  assert.match(failure.message, /temporarily locked/);
  assert.match(failure.message, /Try again in 5m\./);
});

test('lockout is recognised from status 423 and from a 401 body that says locked', () => {
  assert.equal(describeLoginFailure(423, null, null, now).kind, 'locked');
  const fromBody = describeLoginFailure(401, null, { message: 'Account is locked', retryAfterSeconds: 61 }, now);
  assert.equal(fromBody.kind, 'locked');
  assert.match(fromBody.message, /Try again in 1m 1s\./);
  assert.match(describeLoginFailure(429, null, {}, now).message, /Try again later\./);
});

test('retryAfterSeconds reads header seconds, header dates and body fields', () => {
  assert.equal(retryAfterSeconds('120', null, now), 120);
  assert.equal(retryAfterSeconds('Wed, 01 May 2024 10:01:00 GMT', null, now), 60);
  assert.equal(retryAfterSeconds(null, { retryAfter: 12.2 }, now), 13);
  assert.equal(retryAfterSeconds(null, { lockedUntil: '2024-05-01T10:02:00Z' }, now), 120);
  assert.equal(retryAfterSeconds(null, { lockedUntil: '2024-05-01T09:00:00Z' }, now), 0);
  assert.equal(retryAfterSeconds('soon', { retryAfter: -5 }, now), undefined);
  assert.equal(retryAfterSeconds(null, null, now), undefined);
});

test('other failures carry the status and the server message', () => {
  const failure = describeLoginFailure(500, null, { message: 'store unavailable' }, now);
  assert.equal(failure.kind, 'other');
  assert.equal(failure.message, 'Login failed (HTTP 500): store unavailable');
  assert.match(describeLoginFailure(502, null, '', now).message, /Is the cairn server running\?/);
});
