import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_PATH, loginPathFor, safeReturnPath } from './returnPath.ts';

test('safeReturnPath keeps same-origin paths with query and fragment', () => {
  assert.equal(safeReturnPath('/workflows?namespace=ml'), '/workflows?namespace=ml');
  assert.equal(safeReturnPath('/applications#top'), '/applications#top');
  assert.equal(safeReturnPath('/'), '/');
});

test('safeReturnPath refuses anything that could leave the origin', () => {
  for (const bad of [
    'https://evil.example/',
    '//evil.example/x',
    '/\\evil.example',
    'javascript:alert(1)',
    'workflows',
    '/x\nSet-Cookie: a',
    '/x\u007f',
  ]) {
    assert.equal(safeReturnPath(bad), DEFAULT_PATH, bad);
  }
});

test('safeReturnPath never returns to the login page, and defaults when empty', () => {
  assert.equal(safeReturnPath('/login'), DEFAULT_PATH);
  assert.equal(safeReturnPath('/login?return=/x'), DEFAULT_PATH);
  assert.equal(safeReturnPath(''), DEFAULT_PATH);
  assert.equal(safeReturnPath(null), DEFAULT_PATH);
  assert.equal(safeReturnPath(undefined), DEFAULT_PATH);
  assert.equal(safeReturnPath('/loginx'), '/loginx');
});

test('loginPathFor encodes the return path and omits the default', () => {
  assert.equal(loginPathFor('/workflows?namespace=ml'), '/login?return=%2Fworkflows%3Fnamespace%3Dml');
  assert.equal(loginPathFor('/applications'), '/login');
  assert.equal(loginPathFor('//evil'), '/login');
});
