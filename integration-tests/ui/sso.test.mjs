// Browser test of single sign-on against a real identity provider: a person clicks "Log in via
// Dex" on cairn's login page, logs in on Dex's OWN login page (its `ldap` connector over a real
// slapd), and lands in cairn's UI with the groups Dex sent. `platform-admins` (role:admin) may
// sync an Application; `data-readers` (role:readonly) sees it but is refused (403) and the page
// says so. Logging out ends cairn's session and sends the browser to the configured logoutURL on
// Dex's origin.
// Run by integration-tests/ui/run, which starts Dex (`integration-tests/dex/start --ldap`) and a
// cairn server configured for it; see harness.mjs for the environment it reads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { request } from 'playwright-core';
import { waitForPath, withPage } from './harness.mjs';

const DEX_ISSUER = process.env.CAIRN_DEX_ISSUER ?? '';
/** A server with the admin disabled and no other local account, SSO ready (no cluster). */
const SSO_ONLY_URL = process.env.CAIRN_SSO_ONLY_URL ?? '';
/** A server whose issuer nobody answers, admin disabled too (no cluster). */
const SSO_BROKEN_URL = process.env.CAIRN_SSO_BROKEN_URL ?? '';

/** The LDAP users `integration-tests/dex/start --ldap` creates. */
const ALICE = { username: 'alice', password: 'alice-password', group: 'platform-admins' };
const BOB = { username: 'bob', password: 'bob-password', group: 'data-readers' };

/**
 * From cairn's login page through Dex's own pages (connector choice, then its password form)
 * back into cairn at `expectedPath`.
 */
async function logInThroughDex(page, cfg, who, expectedPath, origin = cfg.baseURL) {
  await page.getByRole('heading', { name: 'Log in to cairn' }).waitFor();
  const sso = page.getByRole('link', { name: 'Log in via Dex' });
  await sso.waitFor();
  await sso.click();

  // Dex: first its connector list, then the LDAP connector's username/password page.
  const dexOrigin = new URL(DEX_ISSUER).origin;
  await page.waitForURL((url) => url.origin === dexOrigin);
  await page.getByRole('button', { name: /Log in with LDAP/ }).click();
  await page.waitForURL((url) => url.origin === dexOrigin && url.pathname.endsWith('/auth/ldap/login'));
  await page.locator('#login').fill(who.username);
  await page.locator('#password').fill(who.password);
  await page.screenshot({ path: path.join(cfg.artifacts, `sso-dex-login-${who.username}.png`) });
  await page.locator('#submit-login').click();

  // Dex redirects to cairn's /auth/callback, which starts the session and sends the browser on.
  await waitForPath(page, expectedPath);
  assert.equal(new URL(page.url()).origin, origin, 'back on cairn after the callback');
}

/** The Application's row once the list has loaded. */
async function appRow(page, name) {
  const table = page.getByRole('table', { name: 'Applications' });
  const row = table.getByRole('row').filter({ has: page.getByRole('rowheader', { name, exact: true }) });
  await row.waitFor();
  return row;
}

async function userinfo(context) {
  const response = await context.request.get('/api/v1/session/userinfo');
  assert.equal(response.status(), 200, 'userinfo answers for the SSO session');
  return response.json();
}

/** The Application as the API shows it (the admin's session reads it). */
async function application(context, name) {
  const response = await context.request.get(`/api/v1/applications/${encodeURIComponent(name)}?appNamespace=argocd`);
  assert.equal(response.status(), 200, `GET application ${name}`);
  return response.json();
}

/**
 * Clicks Refresh until the Application's row shows Synced and Healthy, and checks the API agrees
 * that alice's operation succeeded. Bounded: 30 tries, 2 s apart (the controller works on
 * the lab; the page also polls every 10 s by itself).
 */
async function waitForSynced(page, context, name) {
  let last = '';
  for (let attempt = 0; attempt < 30; attempt++) {
    const cells = await (await appRow(page, name)).getByRole('cell').allTextContents();
    last = cells.join(' | ');
    if (cells.includes('Synced') && cells.includes('Healthy')) break;
    await page.waitForTimeout(2000);
    await page.getByRole('button', { name: /Refresh/ }).click();
  }
  assert.match(last, /\bSynced\b.*\bHealthy\b/, `the row of ${name} after the sync: ${last}`);
  const app = await application(context, name);
  assert.equal(app?.status?.operationState?.phase, 'Succeeded', JSON.stringify(app?.status?.operationState));
  assert.equal(app?.status?.operationState?.operation?.initiatedBy?.username, ALICE.username);
}

/** Who started the Application's last or current operation, wherever the controller left it. */
function operationInitiator(app) {
  return app?.operation?.initiatedBy?.username ?? app?.status?.operationState?.operation?.initiatedBy?.username ?? '';
}

function requireEnv(cfg) {
  assert.ok(DEX_ISSUER, 'CAIRN_DEX_ISSUER is not set: integration-tests/ui/run starts Dex and sets it');
  assert.ok(cfg.expectApp, 'CAIRN_EXPECT_APP is not set: integration-tests/ui/run seeds an Application');
}

test('the login page offers SSO beside the local form, as /auth/info says', async () => {
  await withPage('sso-login-page', async ({ page, context, cfg }) => {
    requireEnv(cfg);
    const info = await (await context.request.get('/auth/info')).json();
    assert.equal(info.enabled, true);
    assert.equal(info.ready, true, `the provider is ready: ${JSON.stringify(info)}`);
    assert.equal(info.userLoginsDisabled, false);
    await page.goto('/workflows');
    await waitForPath(page, '/login?return=%2Fworkflows');
    const sso = page.getByRole('link', { name: 'Log in via Dex' });
    await sso.waitFor();
    assert.equal(await sso.getAttribute('href'), '/auth/login?return_url=%2Fworkflows');
    await page.getByLabel('Username').waitFor();
    assert.equal(await page.getByTestId('sso-error').count(), 0, 'no SSO error while Dex answers');
    await page.screenshot({ path: path.join(cfg.artifacts, 'sso-login-page.png') });
  });
});

test('a platform-admins user logs in through Dex, syncs an app, and logs out to the IdP', async () => {
  await withPage('sso-admin', async ({ page, context, cfg }) => {
    requireEnv(cfg);
    // A deep link (the default page needs no return parameter) goes to login, then back.
    await page.goto(`/workflows?namespace=${encodeURIComponent('cairn-ui-test')}`);
    await waitForPath(page, '/login?return=%2Fworkflows%3Fnamespace%3Dcairn-ui-test');
    await logInThroughDex(page, cfg, ALICE, '/workflows?namespace=cairn-ui-test');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Applications' }).click();
    await waitForPath(page, '/applications');

    assert.equal((await page.getByTestId('current-user').textContent())?.trim(), ALICE.username);
    const me = await userinfo(context);
    assert.equal(me.username, ALICE.username);
    assert.ok(me.groups.includes(ALICE.group), `groups from Dex: ${me.groups}`);

    // Sync: the request is accepted (RBAC allows it), the operation is started in alice's name,
    // and the controller deploys the app from its local Git repository: the row turns Synced.
    const row = await appRow(page, cfg.expectApp);
    await row.getByRole('button', { name: `Sync ${cfg.expectApp}` }).click();
    const outcome = page.getByTestId('sync-outcome');
    await outcome.waitFor();
    assert.equal((await outcome.textContent())?.trim(), `Sync of ${cfg.expectApp} started.`);
    assert.equal(await outcome.getAttribute('role'), 'status');
    assert.equal(operationInitiator(await application(context, cfg.expectApp)), ALICE.username);
    await waitForSynced(page, context, cfg.expectApp);
    await page.screenshot({ path: path.join(cfg.artifacts, 'sso-admin-synced.png'), fullPage: true });

    // Log out: cairn's session ends and the browser goes to the logoutURL on Dex's origin, with
    // {{logoutRedirectURL}} replaced by cairn's URL.
    await page.getByRole('button', { name: 'Log out' }).click();
    const dexOrigin = new URL(DEX_ISSUER).origin;
    await page.waitForURL((url) => url.origin === dexOrigin && url.pathname === `${new URL(DEX_ISSUER).pathname}/logout`);
    assert.equal(new URL(page.url()).searchParams.get('return'), cfg.baseURL);
    const after = await context.request.get(`${cfg.baseURL}/api/v1/applications`);
    assert.equal(after.status(), 401, 'the API refuses the old session after logout');
  });
});

test('a data-readers user sees the apps but is refused a sync', async () => {
  await withPage('sso-reader', async ({ page, context, cfg }) => {
    requireEnv(cfg);
    const before = operationInitiator(await adminView(cfg));

    await page.goto('/login');
    await logInThroughDex(page, cfg, BOB, '/applications');
    assert.equal((await page.getByTestId('current-user').textContent())?.trim(), BOB.username);
    const me = await userinfo(context);
    assert.ok(me.groups.includes(BOB.group), `groups from Dex: ${me.groups}`);

    // role:readonly lists applications...
    const row = await appRow(page, cfg.expectApp);
    assert.equal(await page.getByRole('alert').count(), 0, 'listing is allowed');
    // ...but a sync answers 403 and the page says so.
    await row.getByRole('button', { name: `Sync ${cfg.expectApp}` }).click();
    const outcome = page.getByTestId('sync-outcome');
    await outcome.waitFor();
    assert.equal(await outcome.getAttribute('role'), 'alert');
    assert.match(
      (await outcome.textContent()) ?? '',
      new RegExp(`^Not permitted: your account may not sync ${cfg.expectApp} \\(HTTP 403\\)`),
    );
    await page.screenshot({ path: path.join(cfg.artifacts, 'sso-reader-forbidden.png'), fullPage: true });
    const direct = await context.request.post(
      `/api/v1/applications/${encodeURIComponent(cfg.expectApp)}/sync?appNamespace=argocd`,
      { headers: { 'X-Cairn-Csrf': '1', Origin: cfg.baseURL }, data: {} },
    );
    assert.equal(direct.status(), 403, 'the API refuses the sync too');
    // Nothing was started in bob's name.
    const now = operationInitiator(await adminView(cfg));
    assert.notEqual(now, BOB.username);
    assert.equal(now, before);

    // Logout: logoutURL is set, so the browser goes to Dex's origin again, and the session is gone.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL((url) => url.origin === new URL(DEX_ISSUER).origin);
    const after = await context.request.get(`${cfg.baseURL}/api/v1/session/userinfo`);
    const body = after.status() === 200 ? await after.json() : { loggedIn: false };
    assert.equal(body.loggedIn, false, 'no session after logout');
  });
});

/** The Application as the admin sees it, through a separate API client (its own cookie jar:
 * the page's session stays bob's). */
async function adminView(cfg) {
  const admin = await request.newContext({ baseURL: cfg.baseURL });
  try {
    const login = await admin.post('/api/v1/session', {
      headers: { 'X-Cairn-Csrf': '1', Origin: cfg.baseURL },
      data: { username: 'admin', password: cfg.adminPassword },
    });
    assert.equal(login.status(), 200, 'admin login for the check');
    const response = await admin.get(`/api/v1/applications/${encodeURIComponent(cfg.expectApp)}?appNamespace=argocd`);
    assert.equal(response.status(), 200);
    return await response.json();
  } finally {
    await admin.dispose();
  }
}

test('without local accounts the login page offers SSO only, and it logs in', async () => {
  await withPage('sso-only', async ({ page, context, cfg }) => {
    requireEnv(cfg);
    assert.ok(SSO_ONLY_URL, 'CAIRN_SSO_ONLY_URL is not set: integration-tests/ui/run starts that server');
    const info = await (await context.request.get(`${SSO_ONLY_URL}/auth/info`)).json();
    assert.equal(info.ready, true, JSON.stringify(info));
    assert.equal(info.userLoginsDisabled, true);
    await page.goto(`${SSO_ONLY_URL}/login`);
    await page.getByRole('link', { name: 'Log in via Dex' }).waitFor();
    assert.equal(await page.getByLabel('Username').count(), 0, 'no password form');
    assert.equal(await page.getByRole('button', { name: 'Log in', exact: true }).count(), 0);
    await page.screenshot({ path: path.join(cfg.artifacts, 'sso-only-login-page.png') });
    await logInThroughDex(page, cfg, BOB, '/applications', SSO_ONLY_URL);
    assert.equal((await page.getByTestId('current-user').textContent())?.trim(), BOB.username);
  });
});

test('a provider that does not answer shows its one error and keeps the password form', async () => {
  await withPage('sso-broken', async ({ page, context, cfg }) => {
    assert.ok(SSO_BROKEN_URL, 'CAIRN_SSO_BROKEN_URL is not set: integration-tests/ui/run starts that server');
    const info = await (await context.request.get(`${SSO_BROKEN_URL}/auth/info`)).json();
    assert.equal(info.ready, false, JSON.stringify(info));
    await page.goto(`${SSO_BROKEN_URL}/login`);
    const error = page.getByTestId('sso-error');
    await error.waitFor();
    assert.equal((await error.textContent())?.trim(), `Single sign-on is unavailable: ${info.error}`);
    assert.match(info.error, /^identity provider http:\/\/127\.0\.0\.1:\d+\/dex: /);
    assert.equal(await page.getByRole('link', { name: 'Log in via Dex' }).count(), 0);
    // Even with user logins disabled the form stays while SSO is unusable: never no way in.
    assert.equal(info.userLoginsDisabled, true);
    await page.getByLabel('Username').waitFor();
    await page.screenshot({ path: path.join(cfg.artifacts, 'sso-broken-login-page.png') });
  });
});
