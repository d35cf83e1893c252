import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, formatTimestamp, parseTimestamp, runDuration } from './format.ts';

test('formatDuration covers seconds, minutes, hours and days', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(999), '0s');
  assert.equal(formatDuration(1000), '1s');
  assert.equal(formatDuration(61_000), '1m 1s');
  assert.equal(formatDuration(3_600_000), '1h');
  assert.equal(formatDuration(3_723_000), '1h 2m 3s');
  assert.equal(formatDuration(90_061_000), '1d 1h 1m');
});

test('formatDuration rejects negative and non-finite input', () => {
  assert.equal(formatDuration(-1), '');
  assert.equal(formatDuration(Number.NaN), '');
  assert.equal(formatDuration(Number.POSITIVE_INFINITY), '');
});

test('parseTimestamp accepts RFC 3339 and refuses junk', () => {
  assert.equal(parseTimestamp('2024-05-01T10:00:00Z')?.toISOString(), '2024-05-01T10:00:00.000Z');
  assert.equal(parseTimestamp('yesterday'), undefined);
  assert.equal(parseTimestamp(''), undefined);
  assert.equal(parseTimestamp(null), undefined);
  assert.equal(parseTimestamp(42), undefined);
});

test('formatTimestamp renders local time and blanks missing values', () => {
  const local = new Date(2024, 0, 2, 3, 4, 5);
  assert.equal(formatTimestamp(local.toISOString()), '2024-01-02 03:04:05');
  assert.equal(formatTimestamp(undefined), '');
  assert.equal(formatTimestamp('not a date'), '');
});

test('runDuration uses finish time, or now while running, and nothing before start', () => {
  const now = new Date('2024-05-01T10:10:00Z');
  assert.equal(runDuration('2024-05-01T10:00:00Z', '2024-05-01T10:02:30Z', now), '2m 30s');
  assert.equal(runDuration('2024-05-01T10:00:00Z', '', now), '10m');
  assert.equal(runDuration('', '2024-05-01T10:02:30Z', now), '');
  assert.equal(runDuration(undefined, undefined, now), '');
});
