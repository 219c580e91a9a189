import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Browser, Page } from '@playwright/test';
import { test, expect, waitForHydration, accounts, signIn, LoginPage } from './fixtures';

/** Signs in through the plain form, for pages without JavaScript. */
async function signInPlain(page: Page, account: { email: string; password: string }, next: string) {
  const login = new LoginPage(page);
  await login.open(next);
  await login.signIn(account, { js: false });
  await expect(page).toHaveURL(new RegExp(next.replace(/[?]/g, '\\?') + '$'));
}

const settings = '/app/settings/superuser';

function cli(args: string[], input?: string): string {
  return execFileSync(process.env.E2E_BIN!, args, {
    input,
    env: { ...process.env, DATABASE_URL: process.env.E2E_DATABASE_URL!, RUST_LOG: 'warn' },
    encoding: 'utf8',
  });
}

async function reviewerPage(browser: Browser, path: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await signIn(page, accounts.reviewer, path);
  await waitForHydration(page);
  return page;
}

test('one superuser requests a change of the default model, a second approves it, the first sees it applied', async ({ page, browser }) => {
  const key = 'models.platform_default_model';
  await signIn(page, accounts.superuser, `${settings}/models`);
  await waitForHydration(page);
  await expect(page.getByTestId(`review-${key}`)).toHaveText('Needs a second superuser');
  await page.getByLabel('Default model', { exact: true }).selectOption('openai/gpt-4.1');
  await page.getByTestId(`reason-${key}`).fill('cheaper for the batch import');
  await page.getByTestId(`save-${key}`).click();
  const outcome = page.getByTestId(`outcome-${key}`);
  await expect(outcome).toContainText('needs a second superuser');
  const id = Number((await outcome.textContent())!.match(/Change request (\d+)/)![1]);
  await expect(page.getByTestId(`provenance-${key}`)).toContainText('(source=default)');
  await expect(page.getByTestId('open-requests')).toHaveText(' (1 open)');

  // Its author sees it waiting and cannot approve it.
  await page.getByTestId(`request-link-${key}`).click();
  await expect(page.getByTestId(`request-${id}`)).toContainText('You made this request');
  await expect(page.getByRole('button', { name: 'Approve and apply' })).toHaveCount(0);

  // The second superuser sees exactly what it changes, and approves it.
  const reviewer = await reviewerPage(browser, `${settings}/requests`);
  try {
    await expect(reviewer.getByTestId(`request-diff-${id}`)).toHaveText(
      `${key}: "anthropic/claude-sonnet-4-5" (default) → "openai/gpt-4.1" (admin)`,
    );
    await reviewer.getByTestId(`approve-comment-${id}`).fill('fine by me');
    await reviewer.getByTestId(`approve-${id}`).click();
    await expect(reviewer.getByTestId('decision-outcome')).toContainText(`Approved change request ${id}`);
    await expect(reviewer.getByTestId(`request-status-${id}`)).toHaveText('applied');
  } finally {
    await reviewer.context().close();
  }

  // The first superuser sees it applied, by the reviewer, with the author's reason.
  await page.goto(`${settings}/models`);
  await waitForHydration(page);
  await expect(page.getByTestId(`provenance-${key}`)).toHaveText('effective="openai/gpt-4.1" (source=admin)');
  await expect(page.getByTestId(`history-${key}`)).toContainText('reviewer@e2e.example');
  await expect(page.getByTestId(`history-${key}`)).toContainText(`cheaper for the batch import (change request ${id})`);
  await expect(page.getByTestId('open-requests')).toHaveCount(0);

  // Back to the default: the reviewer requests it this time, the author rejects nothing of
  // theirs but approves it.
  const other = await reviewerPage(browser, `${settings}/models`);
  try {
    await other.getByTestId(`reset-${key}`).click();
    await expect(other.getByTestId(`outcome-${key}`)).toContainText('needs a second superuser');
  } finally {
    await other.context().close();
  }
  await page.goto(`${settings}/requests`);
  await waitForHydration(page);
  await page.getByRole('button', { name: 'Approve and apply' }).click();
  await expect(page.getByTestId('decision-outcome')).toContainText('Approved change request');
  await page.goto(`${settings}/models`);
  await waitForHydration(page);
  await expect(page.getByTestId(`provenance-${key}`)).toContainText('(source=default)');
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('a request is rejected with a comment through plain forms', async ({ page, browser }) => {
    const file = `${process.env.E2E_TMP}/request.json`;
    writeFileSync(
      file,
      JSON.stringify({ reason: 'try more retries', changes: [{ key: 'worker.max_retries', value: 9 }] }),
    );
    const opened = cli(['policy', 'request', file]);
    const id = Number(opened.match(/opened change request (\d+)/)![1]);
    await signInPlain(page, accounts.reviewer, `${settings}/requests`);
    await page.getByTestId(`reject-comment-${id}`).fill('not during the import');
    await page.getByTestId(`reject-${id}`).click();
    await expect(page.getByTestId('decision-outcome')).toHaveText(`Rejected change request ${id}.`);
    await expect(page.getByTestId(`request-status-${id}`)).toHaveText('rejected');
    await expect(page.getByTestId(`request-${id}`)).toContainText('not during the import');
  });
});

/** Sets claim ordering to newest-first and back through the CLI; the revision in between. */
function orderingRevision(): number {
  cli(['policy', 'set', 'worker.claim_ordering', 'block_index_desc', '--reason', 'newest first']);
  const revision = JSON.parse(cli(['policy', 'revisions', '--json']))[0].revision as number;
  return revision;
}

test('open a revision, compare it with today, and restore the policy of a run', async ({ page }) => {
  const key = 'worker.claim_ordering';
  const revision = orderingRevision();
  const run = Number(cli(['run', 'create', '--blocks', '-'], 'one\n\ntwo\n').match(/created run (\d+)/)![1]);
  cli(['policy', 'unset', key, '--reason', 'back to oldest first']);

  await signIn(page, accounts.superuser, `${settings}/revisions`);
  await waitForHydration(page);
  await expect(page.getByTestId(`revision-${revision + 1}`)).toContainText('back to oldest first');
  await page.getByTestId(`open-revision-${revision}`).click();
  await expect(page.getByTestId('comparison')).toContainText(`revision ${revision} compared with today`);
  const row = page.getByTestId(`compare-${key}`);
  await expect(row).toHaveAttribute('data-differs', 'true');
  await expect(row).toContainText('effective="block_index_desc" (source=admin)');
  await expect(row).toContainText('effective="block_index_asc" (source=default)');
  await expect(page.getByTestId('compare-summary')).toHaveText('1 key(s) differ.');
  await expect(page.getByTestId('restore-diff')).toHaveText(
    `${key}: "block_index_asc" (default) → "block_index_desc" (admin)`,
  );
  // Compared with the revision after it instead of today: the same difference.
  await page.getByTestId('compare-with').selectOption(String(revision + 1));
  await page.getByTestId('compare-apply').click();
  await expect(page.getByTestId('comparison')).toContainText(`revision ${revision} compared with revision ${revision + 1}`);
  await expect(page.getByTestId(`compare-${key}`)).toHaveAttribute('data-differs', 'true');

  // The policy the run was created under, reached from the run's page, restored as one change
  // set after seeing its diff.
  await page.goto(`/app/runs/${run}`);
  await waitForHydration(page);
  await page.getByTestId('run-policy-compare').click();
  await expect(page).toHaveURL(new RegExp(`/revisions\\?run=${run}$`));
  await expect(page.getByTestId('comparison')).toContainText(`run ${run}'s snapshot compared with today`);
  await expect(page.getByTestId('restore-diff')).toHaveText(
    `${key}: "block_index_asc" (default) → "block_index_desc" (admin)`,
  );
  await page.getByTestId('restore-reason').fill('as the run had it');
  await page.getByTestId('restore-confirm').click();
  await expect(page.getByTestId('restore-outcome')).toContainText('Restored: 1 key(s) changed');
  await expect(page.getByTestId('restore-none')).toBeVisible();
  expect(cli(['policy', 'get', key])).toContain('effective="block_index_desc" (source=admin)');
  const top = JSON.parse(cli(['policy', 'revisions', '--json']))[0];
  expect(top.kind).toEqual({ restore_run: run });
  expect(top.reason).toBe('as the run had it');
  cli(['policy', 'unset', key]);
});

test.describe('restore without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('a revision is restored through a plain form after its diff', async ({ page }) => {
    const key = 'worker.claim_ordering';
    const revision = orderingRevision();
    cli(['policy', 'unset', key]);
    await signInPlain(page, accounts.superuser, `${settings}/revisions?rev=${revision}`);
    await expect(page.getByTestId('restore-diff')).toContainText(key);
    await page.getByTestId('restore-confirm').click();
    await expect(page).toHaveURL(/\/revisions\?notice=restored/);
    await expect(page.getByTestId('restore-outcome')).toContainText('Restored: 1 key(s) changed');
    await expect(page.getByTestId(`revision-${revision + 2}`)).toContainText(`restore of revision ${revision}`);
    cli(['policy', 'unset', key]);
  });
});

test('stage three edits in two categories and apply them as one change set', async ({ page }) => {
  await signIn(page, accounts.superuser, `${settings}/models`);
  await waitForHydration(page);
  await page.getByTestId('input-models.platform_default_max_tokens').fill('8000');
  await page.getByTestId('stage-models.platform_default_max_tokens').click();
  await expect(page.getByTestId('staged-models.platform_default_max_tokens')).toHaveText('Staged: 8000');
  await page.evaluate(() => ((window as any).__samePage = true));
  await page.getByTestId('nav-worker').click();
  await expect(page.getByTestId('panel-title')).toHaveText('Worker execution');
  await page.getByLabel('Claim ordering', { exact: true }).selectOption('block_index_desc');
  await page.getByTestId('stage-worker.claim_ordering').click();
  await expect(page.getByTestId('pending')).toContainText('Pending changes (2)');

  // Another category, without a page load: the staged edits stay.
  await page.getByTestId('nav-upload').click();
  await expect(page.getByTestId('panel-title')).toHaveText('Upload');
  await page.getByTestId('input-upload.max_files_per_batch').fill('25');
  await page.getByTestId('stage-upload.max_files_per_batch').click();
  await expect(page.getByTestId('pending')).toContainText('Pending changes (3)');
  const tokens = page.getByTestId('pending-models.platform_default_max_tokens');
  await expect(tokens).toContainText('effective=4096 (source=default)');
  await expect(tokens).toContainText('8000');
  // Nothing is applied while staged.
  expect(cli(['policy', 'get', 'models.platform_default_max_tokens'])).toContain('effective=4096 (source=default)');

  await page.getByTestId('pending-reason').fill('tune for the import');
  await page.getByTestId('pending-apply').click();
  await expect(page.getByTestId('pending-outcome')).toContainText('Applied 3 change(s) as one change set');
  await expect(page.getByTestId('pending')).toHaveCount(0);
  await expect(page.getByTestId('provenance-upload.max_files_per_batch')).toHaveText('effective=25 (source=admin)');
  expect(await page.evaluate(() => (window as any).__samePage)).toBe(true);
  const top = JSON.parse(cli(['policy', 'revisions', '--json']))[0];
  expect(top.kind).toBe('apply');
  expect(top.reason).toBe('tune for the import');
  expect([...top.keys].sort()).toEqual(
    ['models.platform_default_max_tokens', 'upload.max_files_per_batch', 'worker.claim_ordering'].sort(),
  );
  // Back as it was, by restoring the revision before it.
  cli(['policy', 'restore', String(top.revision - 1)]);
  expect(cli(['policy', 'get', 'models.platform_default_max_tokens'])).toContain('(source=default)');
});
