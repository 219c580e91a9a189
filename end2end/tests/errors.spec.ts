import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { test, expect, waitForHydration, accounts, signIn } from './fixtures';

// Errors read as the sentence a person reads: no framework prefix, on the page and in the
// JSON a server function answers with.

const serverCmd = process.env.E2E_SERVER_CMD ?? 'target/release/runtime-policy serve';
const bin = path.resolve(__dirname, '..', '..', serverCmd.split(' ')[0]);

/** A run created from the CLI, so no member owns it. */
function cliRun(): number {
  const out = execFileSync(bin, ['run', 'create', '--blocks', '-'], {
    input: 'someone else\'s text\n',
    env: { ...process.env, DATABASE_URL: process.env.E2E_DATABASE_URL ?? '', RUST_LOG: 'warn' },
    encoding: 'utf8',
  });
  const id = Number(/created run (\d+)/.exec(out)?.[1]);
  expect(id).toBeGreaterThan(0);
  return id;
}

test.describe('refusals and validation errors', () => {
  // The browser logs the status of a refused request itself.
  test.use({ allowedConsoleErrors: [/status of 4(03|04|22)/] });

  test('a member refused a run, a superuser function and an empty run sees plain sentences', async ({ page }) => {
    const id = cliRun();
    await signIn(page, accounts.member, '/app/runs');

    // Someone else's run: the same answer as a run that does not exist.
    await page.goto(`/app/runs/${id}`);
    await waitForHydration(page);
    await expect(page.getByTestId('run-error')).toHaveText(`no run ${id}`);

    // A superuser's server function, called with the member's session.
    const res = await page.request.post('/api/save_policy', {
      form: { key: 'worker.max_retries', value: '5', expected_version: '0' },
    });
    expect(res.status()).toBe(403);
    expect(await res.json()).toMatchObject({ error: 'This needs a superuser.' });

    // A validation error from creating a run with nothing in it.
    await page.goto('/app/runs');
    await waitForHydration(page);
    await page.getByTestId('run-text').fill('   ');
    await page.getByTestId('run-create').click();
    await expect(page.getByTestId('run-error')).toHaveText('text: needs at least one block of text');
    await expect(page.locator('body')).not.toContainText('server function');
  });
});
