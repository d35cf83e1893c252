// Browser test of cairn's web UI against a real, running cairn server (CAIRN_URL): a person logs
// in as admin, sees the Applications and Workflows lists with real data, and logs out.
// Run by integration-tests/ui/run, which starts the server and seeds an Application and a
// Workflow; see harness.mjs for the environment it reads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { waitForPath, withPage } from './harness.mjs';

async function logIn(page, username, password) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
}

/** Waits for a list page to settle: a table with rows, or its empty state. */
async function waitForList(page, tableName, emptyText) {
  const table = page.getByRole('table', { name: tableName });
  const empty = page.getByText(emptyText);
  await table.or(empty).first().waitFor();
  assert.equal(await page.getByRole('alert').count(), 0, `an error is shown on the ${tableName} page`);
  return table;
}

test('a person logs in as admin, sees applications and workflows, and logs out', async () => {
  await withPage('main-flow', async ({ page, context, cfg }) => {
    const assetCaching = [];
    page.on('response', (response) => {
      if (new URL(response.url()).pathname.startsWith('/assets/')) {
        assetCaching.push(response.headers()['cache-control'] ?? '');
      }
    });

    // An anonymous visitor is sent to the login page.
    await page.goto('/');
    await waitForPath(page, '/login');
    await page.getByRole('heading', { name: 'Log in to cairn' }).waitFor();

    await logIn(page, 'admin', cfg.adminPassword);

    // Applications: the default page after login.
    await waitForPath(page, '/applications');
    await page.getByRole('heading', { name: 'Applications' }).waitFor();
    assert.equal((await page.getByTestId('current-user').textContent())?.trim(), 'admin');
    const apps = await waitForList(page, 'Applications', 'No applications yet');
    if (cfg.expectApp) {
      const row = apps.getByRole('row').filter({ has: page.getByRole('rowheader', { name: cfg.expectApp, exact: true }) });
      await row.waitFor();
      const cells = await row.getByRole('cell').allTextContents();
      assert.ok(cells.some((c) => /Synced|OutOfSync|Unknown/.test(c)), `sync status in ${cells}`);
      assert.ok(cells.some((c) => /Healthy|Progressing|Degraded|Suspended|Missing|Unknown/.test(c)), `health status in ${cells}`);
    }
    await page.screenshot({ path: path.join(cfg.artifacts, 'applications.png'), fullPage: true });

    // Workflows, all namespaces.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Workflows' }).click();
    await waitForPath(page, '/workflows');
    await page.getByRole('heading', { name: 'Workflows' }).waitFor();
    const workflows = await waitForList(page, 'Workflows', /No workflows in/);
    await page.screenshot({ path: path.join(cfg.artifacts, 'workflows.png'), fullPage: true });
    if (cfg.expectWorkflow) {
      const rowOf = (table) =>
        table.getByRole('row').filter({ has: page.getByRole('rowheader', { name: cfg.expectWorkflow, exact: true }) });
      const row = rowOf(workflows);
      await row.waitFor();
      const namespace = (await row.getByRole('cell').first().textContent())?.trim() ?? '';
      assert.notEqual(namespace, '', 'the workflow row shows its namespace');

      // The namespace selector narrows the list to one namespace, through the URL.
      await page.getByLabel('Namespace').fill(namespace);
      await page.getByRole('button', { name: 'Show' }).click();
      await waitForPath(page, `/workflows?namespace=${encodeURIComponent(namespace)}`);
      await page.getByText(`Showing namespace ${namespace}.`).waitFor();
      await rowOf(page.getByRole('table', { name: 'Workflows' })).waitFor();
      await page.screenshot({ path: path.join(cfg.artifacts, 'workflows-namespace.png'), fullPage: true });
    }

    assert.ok(assetCaching.length > 0, 'the page loaded its bundles from /assets/');
    for (const value of assetCaching) {
      assert.match(value, /immutable/, 'hashed bundles are served as immutable');
    }

    // Log out: back on the login page, and the session is gone on the server too.
    await page.getByRole('button', { name: 'Log out' }).click();
    await waitForPath(page, '/login');
    await page.getByLabel('Username').waitFor();
    const after = await context.request.get('/api/v1/applications');
    assert.equal(after.status(), 401, 'the API refuses the old session after logout');

    // A deep link needs a login and comes back to where it pointed.
    await page.goto('/workflows');
    await waitForPath(page, '/login');
    assert.equal(new URL(page.url()).searchParams.get('return'), '/workflows');
    await logIn(page, 'admin', cfg.adminPassword);
    await waitForPath(page, '/workflows');
    await page.getByRole('heading', { name: 'Workflows' }).waitFor();
  });
});

test('a wrong password shows an error and keeps the visitor on the login page', async () => {
  await withPage('wrong-password', async ({ page, context, cfg }) => {
    await page.goto('/login');
    await logIn(page, 'admin', `not-the-password-${Date.now()}`);
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match((await alert.textContent()) ?? '', /Invalid username or password|locked/);
    await waitForPath(page, '/login');
    // The password field is cleared for the next try; the user name is kept.
    assert.equal(await page.getByLabel('Password').inputValue(), '');
    assert.equal(await page.getByLabel('Username').inputValue(), 'admin');
    await page.screenshot({ path: path.join(cfg.artifacts, 'login-error.png') });
    const apps = await context.request.get('/api/v1/applications');
    assert.equal(apps.status(), 401, 'a failed login grants no session');
  });
});
