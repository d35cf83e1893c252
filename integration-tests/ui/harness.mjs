// Shared setup of the browser test: configuration from the environment, and one fresh Chromium
// (own temporary profile) per test so tests share no cookies and never depend on each other.

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

/** Debian's Chromium; Playwright's own browser downloads are not available on these machines. */
const CHROMIUM = process.env.CAIRN_CHROMIUM ?? '/usr/bin/chromium';

/** Flags that keep Chromium quiet and self-contained: no sandbox (runs as root in CI), no GPU,
 * and no background traffic to the outside. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** How long one UI step may take: generous, the server may be a debug build on 2 cores. */
const STEP_TIMEOUT_MS = 20_000;

function required(name, hint) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: ${hint}. integration-tests/ui/run starts a server and sets it.`,
    );
  }
  return value;
}

/** Test configuration, read once. */
export function config() {
  const baseURL = required('CAIRN_URL', 'the base URL of a running cairn server').replace(/\/+$/, '');
  return {
    baseURL,
    adminPassword: required('CAIRN_ADMIN_PASSWORD', "the admin password (cairn admin initial-password)"),
    expectApp: process.env.CAIRN_EXPECT_APP ?? '',
    expectWorkflow: process.env.CAIRN_EXPECT_WORKFLOW ?? '',
    artifacts: process.env.CAIRN_UI_ARTIFACTS ?? '/tmp/cairn-ui',
  };
}

/**
 * Runs `body` with a fresh browser context and page. Uncaught page errors and CSP violations
 * fail the test (they mean the UI is broken for a person even if the clicks succeed). On
 * failure a screenshot is saved next to the others for whoever reads the log.
 */
export async function withPage(name, body) {
  const cfg = config();
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)`);
  }
  await mkdir(cfg.artifacts, { recursive: true });
  const profile = await mkdtemp(path.join(tmpdir(), 'cairn-ui-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    baseURL: cfg.baseURL,
    viewport: { width: 1360, height: 820 },
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on('pageerror', (error) => problems.push(`uncaught error: ${error.message}`));
  page.on('console', (message) => {
    const text = message.text();
    if (message.type() === 'error' && /Content Security Policy/i.test(text)) {
      problems.push(`CSP violation: ${text}`);
    }
  });
  try {
    await body({ page, context, cfg });
    if (problems.length > 0) throw new Error(`the page reported problems:\n${problems.join('\n')}`);
  } catch (error) {
    const shot = path.join(cfg.artifacts, `failure-${name}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    if (error instanceof Error) error.message += `\n(page URL ${page.url()}; screenshot ${shot})`;
    throw error;
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}

/** Resolves when the page's path (and query, when given) is `expected`. */
export async function waitForPath(page, expected) {
  await page.waitForURL((url) => url.pathname + (expected.includes('?') ? url.search : '') === expected);
}
