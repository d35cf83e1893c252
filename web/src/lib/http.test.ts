import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CSRF_HEADER, buildRequestInit, errorMessageFrom, isStateChanging } from './http.ts';

test('state-changing methods are the ones that carry the CSRF header', () => {
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'delete']) {
    assert.equal(isStateChanging(method), true, method);
    const headers = buildRequestInit(method).headers as Record<string, string>;
    assert.equal(headers[CSRF_HEADER], '1', method);
  }
  for (const method of ['GET', 'HEAD', 'OPTIONS', 'get']) {
    assert.equal(isStateChanging(method), false, method);
    const headers = buildRequestInit(method).headers as Record<string, string>;
    assert.equal(headers[CSRF_HEADER], undefined, method);
  }
});

test('requests are same-origin with credentials and JSON bodies', () => {
  const init = buildRequestInit('post', { username: 'admin', password: 'pw' });
  assert.equal(init.method, 'POST');
  assert.equal(init.credentials, 'same-origin');
  assert.equal(init.body, '{"username":"admin","password":"pw"}');
  const headers = init.headers as Record<string, string>;
  assert.equal(headers['Content-Type'], 'application/json');
  assert.equal(headers['Accept'], 'application/json');
  assert.equal(buildRequestInit('GET').body, undefined);
});

test('errorMessageFrom reads message, error or detail, or plain text', () => {
  assert.equal(errorMessageFrom({ message: 'boom' }), 'boom');
  assert.equal(errorMessageFrom({ error: 'nope', code: 7 }), 'nope');
  assert.equal(errorMessageFrom({ detail: 'why' }), 'why');
  assert.equal(errorMessageFrom({ message: '  ', error: 'fallback' }), 'fallback');
  assert.equal(errorMessageFrom('  plain text\n'), 'plain text');
  assert.equal(errorMessageFrom(null), '');
  assert.equal(errorMessageFrom({ code: 5 }), '');
  assert.equal(errorMessageFrom('x'.repeat(600)).length, 500);
});
