import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import AxeBuilder from '@axe-core/playwright';
import { Page } from '@playwright/test';
import { test, expect, waitForHydration, accounts, signIn } from './fixtures';

// axe-core on every page, deep links included: no serious or critical violation. The pages'
// CSP refuses injected scripts, so these contexts bypass it to let axe in.
test.use({ bypassCSP: true });

const serverCmd = process.env.E2E_SERVER_CMD ?? 'target/release/runtime-policy serve';
const bin = path.resolve(__dirname, '..', '..', serverCmd.split(' ')[0]);

async function expectAccessible(page: Page, url: string) {
  await page.goto(url);
  await waitForHydration(page);
  const results = await new AxeBuilder({ page }).analyze();
  const serious = results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(serious, `axe on ${url}`).toEqual([]);
}

test('the sign-in page', async ({ page }) => {
  await expectAccessible(page, '/login');
});

test('every settings section, a deep link to a highlighted key, and the audit log', async ({ page }) => {
  await signIn(page, accounts.superuser);
  for (const url of [
    '/app/settings/superuser/models',
    '/app/settings/superuser/worker',
    '/app/settings/superuser/optimization?key=worker.batching.safety_margin#key-worker-batching-safety_margin',
    '/app/settings/superuser/upload',
    '/app/settings/superuser/audit',
    '/app/settings/superuser/revisions',
    '/app/settings/superuser/requests',
    '/app/settings/superuser/integrations',
  ]) {
    await expectAccessible(page, url);
  }
});

test('the runs, run pages, the fleet and the page a member may not see', async ({ page }) => {
  const env = { ...process.env, DATABASE_URL: process.env.E2E_DATABASE_URL ?? '', RUST_LOG: 'warn' };
  const out = execFileSync(bin, ['run', 'create', '--blocks', '-'], {
    input: 'first block\n\nsecond block\n',
    env,
    encoding: 'utf8',
  });
  const id = Number(/created run (\d+)/.exec(out)?.[1]);
  const file = path.join(process.env.E2E_TMP ?? '/tmp', `a11y-${Date.now()}.csv`);
  fs.writeFileSync(file, 'name,total\nada,1\ngrace,2\n');
  const fromFile = Number(/created run (\d+)/.exec(execFileSync(bin, ['run', 'create', '--file', file], { env, encoding: 'utf8' }))?.[1]);
  await signIn(page, accounts.superuser);
  await expectAccessible(page, '/app/runs');
  await expectAccessible(page, `/app/runs/${id}`);
  await expectAccessible(page, `/app/runs/${fromFile}`);
  await expectAccessible(page, '/app/runs/fleet');
  const member = await (await page.context().browser()!.newContext({ bypassCSP: true })).newPage();
  await signIn(member, accounts.member, '/app/runs');
  await expectAccessible(member, '/app/runs');
  await expectAccessible(member, '/app/settings/superuser');
});
