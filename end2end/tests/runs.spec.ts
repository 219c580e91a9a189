import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { Page } from '@playwright/test';
import { test, expect, waitForHydration, accounts, signIn as signInAs } from './fixtures';

// The same binary the server runs, against the same database (end2end/run.sh sets both).
const serverCmd = process.env.E2E_SERVER_CMD ?? 'target/release/runtime-policy serve';
const bin = path.resolve(__dirname, '..', '..', serverCmd.split(' ')[0]);

function cli(args: string[], input?: string): string {
  return execFileSync(bin, args, {
    input,
    env: { ...process.env, DATABASE_URL: process.env.E2E_DATABASE_URL ?? '', RUST_LOG: 'warn' },
    encoding: 'utf8',
  });
}

const member = { email: `runs-member-${Date.now()}@e2e.example`, password: `runs-member-pw-${Date.now()}` };

test.beforeAll(() => {
  cli(['user', 'create', member.email, '--role', 'member'], `${member.password}\n`);
});

/** The run list and its creation form. */
class RunsPage {
  constructor(private page: Page) {}

  async create(text: string): Promise<number> {
    await this.page.getByTestId('run-text').fill(text);
    await this.page.getByTestId('run-create').click();
    await expect(this.page).toHaveURL(/\/app\/runs\/\d+$/);
    return Number(this.page.url().split('/').pop());
  }
}

/** One run's page. */
class RunPage {
  constructor(private page: Page) {}

  value(key: string) {
    return this.page.getByTestId(`snapshot-value-${key}`);
  }

  layer(key: string) {
    return this.page.getByTestId(`snapshot-layer-${key}`);
  }

  drift(key: string) {
    return this.page.getByTestId(`drift-${key}`);
  }
}

async function signIn(page: Page, next: string) {
  await page.goto(`/login?next=${encodeURIComponent(next)}`);
  await waitForHydration(page);
  await page.getByTestId('login-email').fill(member.email);
  await page.getByTestId('login-password').fill(member.password);
  await page.getByTestId('login-submit').click();
  await expect(page).toHaveURL(new RegExp(`${next}$`));
  await waitForHydration(page);
}

test('a run keeps its snapshot and shows drift after the baseline changes', async ({ page, browser }) => {
  await signIn(page, '/app/runs');
  const id = await new RunsPage(page).create('alpha\n\nbeta\nstill beta\n\ngamma');

  const run = new RunPage(page);
  const key = 'worker.claim_batch_size';
  await expect(page.getByTestId('run-title')).toHaveText(`Run #${id}`);
  await expect(page.getByTestId('run-counts')).toHaveText('0 done, 0 failed, 0 claimed, 3 pending');
  await expect(run.value(key)).toHaveText('effective=10 (source=run_snapshot)');
  await expect(run.layer(key)).toHaveText('default');
  await expect(run.drift(key)).toHaveCount(0);

  // Back to the list without a reload: it stays there (the creation does not open the run
  // again), and its row leads back to the run.
  await page.getByRole('link', { name: 'All runs' }).click();
  await expect(page.getByTestId(`run-row-${id}`)).toBeVisible();
  await page.waitForTimeout(300);
  await expect(page).toHaveURL(/\/app\/runs$/);
  await page.getByTestId(`run-row-${id}`).getByRole('link').click();
  await expect(page.getByTestId('run-title')).toHaveText(`Run #${id}`);

  // A superuser raises the batch size on the settings page, in a browser of their own.
  const admin = await (await browser.newContext()).newPage();
  try {
    await signInAs(admin, accounts.superuser, '/app/settings/superuser/worker');
    await waitForHydration(admin);
    await admin.getByTestId(`input-${key}`).fill('25');
    await admin.getByTestId(`reason-${key}`).fill('end-to-end drift check');
    await admin.getByTestId(`save-${key}`).click();
    await expect(admin.getByTestId(`provenance-${key}`)).toHaveText('effective=25 (source=admin)');
  } finally {
    await admin.context().close();
  }

  await page.reload();
  await waitForHydration(page);
  await expect(run.value(key)).toHaveText('effective=10 (source=run_snapshot)');
  await expect(run.layer(key)).toHaveText('default');
  await expect(run.drift(key)).toContainText('effective=25 (source=admin)');
  await expect(page.getByTestId(`drift-worker.max_retries`)).toHaveCount(0);

  // The list shows the run with its status and block counts.
  await page.getByRole('link', { name: 'All runs' }).click();
  const row = page.getByTestId(`run-row-${id}`);
  await expect(row).toContainText('pending');
  await expect(row).toContainText('0 / 0 / 3');
  await expect(row).toContainText(member.email);
});

// Later specs expect the baseline at its default again.
test.afterAll(() => {
  cli(['policy', 'unset', 'worker.claim_batch_size']);
});

test('an anonymous visitor is sent to sign in', async ({ page }) => {
  await page.goto('/app/runs');
  await expect(page).toHaveURL(/\/login\?next=/);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the form still creates a run and opens it', async ({ page }) => {
    await page.goto('/login?next=%2Fapp%2Fruns');
    await page.getByTestId('login-email').fill(member.email);
    await page.getByTestId('login-password').fill(member.password);
    await page.getByTestId('login-submit').click();
    await expect(page).toHaveURL(/\/app\/runs$/);
    await page.getByTestId('run-text').fill('one\n\ntwo');
    await page.getByTestId('run-create').click();
    await expect(page).toHaveURL(/\/app\/runs\/\d+$/);
    await expect(page.getByTestId('run-counts')).toHaveText('0 done, 0 failed, 0 claimed, 2 pending');
    await expect(page.getByTestId('snapshot-value-worker.claim_ordering')).toHaveText('effective="block_index_asc" (source=run_snapshot)');
  });
});
