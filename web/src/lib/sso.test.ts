import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LOCAL_ONLY, loginOptions, logoutTarget, ssoLoginHref } from './sso.ts';

test('no SSO configured, or an unreadable answer, shows the password form only', () => {
  assert.deepEqual(loginOptions({ enabled: false, userLoginsDisabled: false }), LOCAL_ONLY);
  assert.deepEqual(loginOptions(undefined), LOCAL_ONLY);
  assert.deepEqual(loginOptions('<html>'), LOCAL_ONLY);
  // Without SSO the form stays even if the server says user logins are off: never no way in.
  assert.deepEqual(loginOptions({ enabled: false, userLoginsDisabled: true }), LOCAL_ONLY);
});

test('a ready provider offers its button beside the form', () => {
  const options = loginOptions({ enabled: true, ready: true, name: 'Dex', loginURL: '/auth/login', error: null });
  assert.deepEqual(options, { sso: { name: 'Dex', loginURL: '/auth/login' }, ssoError: '', localLogin: true });
  assert.equal(loginOptions({ enabled: true, ready: true }).sso?.name, 'SSO');
  // A login URL that is not a same-origin path is not linked to.
  assert.equal(loginOptions({ enabled: true, ready: true, loginURL: '//evil.example' }).sso?.loginURL, '/auth/login');
});

test('user logins disabled hide the form only while SSO is usable', () => {
  assert.equal(loginOptions({ enabled: true, ready: true, userLoginsDisabled: true }).localLogin, false);
  const broken = loginOptions({ enabled: true, ready: false, error: 'connection refused', userLoginsDisabled: true });
  assert.equal(broken.localLogin, true);
  assert.equal(broken.sso, null);
});

test('a misconfigured provider shows the one error the server reports', () => {
  const options = loginOptions({
    enabled: true,
    ready: false,
    name: 'Dex',
    error: 'identity provider https://dex.example/dex: connection refused',
  });
  assert.equal(options.sso, null);
  assert.equal(options.ssoError, 'Single sign-on is unavailable: identity provider https://dex.example/dex: connection refused');
  assert.match(loginOptions({ enabled: true, ready: false, name: 'Dex' }).ssoError, /Dex is configured but not reachable yet/);
});

test('the SSO link carries a checked return path', () => {
  assert.equal(ssoLoginHref('/auth/login', '/workflows?namespace=ml'), '/auth/login?return_url=%2Fworkflows%3Fnamespace%3Dml');
  assert.equal(ssoLoginHref('/auth/login', 'https://evil.example/'), '/auth/login?return_url=%2Fapplications');
  assert.equal(ssoLoginHref('/auth/login?x=1', '/applications'), '/auth/login?x=1&return_url=%2Fapplications');
});

test('logout follows the provider URL or stays in the app', () => {
  assert.deepEqual(logoutTarget({ redirect: 'https://dex.example/logout?r=x' }), { external: 'https://dex.example/logout?r=x' });
  assert.deepEqual(logoutTarget({ redirect: '/login' }), { path: '/login' });
  assert.deepEqual(logoutTarget({ redirect: '//evil.example' }), { path: '/login' });
  assert.deepEqual(logoutTarget({ redirect: 'javascript:alert(1)' }), { path: '/login' });
  assert.deepEqual(logoutTarget(undefined), { path: '/login' });
});
