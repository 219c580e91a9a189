import { execFileSync } from 'node:child_process';
import { test, expect, waitForHydration, accounts, signIn, LoginPage } from './fixtures';
import { Browser, Page, Locator } from '@playwright/test';

/** One key's section on the settings page. */
class KeyPanel {
  readonly root: Locator;
  constructor(private page: Page, readonly key: string) {
    this.root = page.getByTestId(`key-${key}`);
  }
  provenance() { return this.page.getByTestId(`provenance-${this.key}`); }
  input() { return this.page.getByTestId(`input-${this.key}`); }
  reason() { return this.page.getByTestId(`reason-${this.key}`); }
  outcome() { return this.page.getByTestId(`outcome-${this.key}`); }
  history() { return this.page.getByTestId(`history-${this.key}`); }
  async save(reason?: string) {
    if (reason) await this.reason().fill(reason);
    await this.page.getByTestId(`save-${this.key}`).click();
  }
  async reset() { await this.page.getByTestId(`reset-${this.key}`).click(); }
}

/** Sets a key through the CLI, as a second editor would. */
function cliSet(key: string, value: string) {
  execFileSync(process.env.E2E_BIN!, ['policy', 'set', key, value, '--reason', 'from the shell'], {
    env: { ...process.env, DATABASE_URL: process.env.E2E_DATABASE_URL!, USER: 'ops' },
  });
}

function cliUnset(key: string) {
  execFileSync(process.env.E2E_BIN!, ['policy', 'unset', key], {
    env: { ...process.env, DATABASE_URL: process.env.E2E_DATABASE_URL!, USER: 'ops' },
  });
}

/** The second superuser approves every open change request, in a browser of their own. */
async function approveAll(browser: Browser) {
  const reviewer = await (await browser.newContext()).newPage();
  try {
    await signIn(reviewer, accounts.reviewer, '/app/settings/superuser/requests');
    await waitForHydration(reviewer);
    const buttons = reviewer.locator('[data-testid^="approve-"]').filter({ hasText: 'Approve and apply' });
    while ((await buttons.count()) > 0) {
      await buttons.first().click();
      await expect(reviewer.getByTestId('decision-outcome')).toContainText('Approved change request');
      await reviewer.reload();
      await waitForHydration(reviewer);
    }
  } finally {
    await reviewer.context().close();
  }
}

async function open(page: Page, category: string) {
  await page.goto(`/app/settings/superuser/${category}`);
  await waitForHydration(page);
}

/** Save with a reason, see `source=admin` and the history row, reload, reset. */
async function roundTrip(page: Page, category: string, key: string, change: (k: KeyPanel) => Promise<void>, expected: string) {
  await open(page, category);
  const k = new KeyPanel(page, key);
  await expect(k.provenance()).toContainText('(source=default)');
  await change(k);
  await expect(page.getByTestId(`unsaved-${key}`)).toBeVisible();
  // No full page load: a marker set now survives the save.
  await page.evaluate(() => ((window as any).__samePage = true));
  await k.save(`e2e ${key}`);
  await expect(k.provenance()).toHaveText(`effective=${expected} (source=admin)`);
  await expect(k.history().getByText(`Reason: e2e ${key}`)).toBeVisible();
  await expect(page.getByTestId(`unsaved-${key}`)).toHaveCount(0);
  expect(await page.evaluate(() => (window as any).__samePage)).toBe(true);
  await expect(page.getByTestId(`marker-${key}`)).toHaveCount(1);

  await page.reload();
  await waitForHydration(page);
  await expect(k.provenance()).toHaveText(`effective=${expected} (source=admin)`);

  await k.reset();
  await expect(k.provenance()).toContainText('(source=default)');
  await expect(page.getByTestId(`marker-${key}`)).toHaveCount(0);
}

test.beforeEach(async ({ page, javaScriptEnabled }) => {
  if (javaScriptEnabled) await signIn(page, accounts.superuser);
});

test('toggle', async ({ page }) => {
  await roundTrip(page, 'optimization', 'worker.prompt_caching.enabled', async (k) => {
    // The dependent mode is disabled, with a note, while caching is off.
    await expect(page.getByTestId('input-worker.prompt_caching.mode')).toBeDisabled();
    await expect(page.getByTestId('dependency-note-worker.prompt_caching.mode')).toBeVisible();
    await page.getByRole('switch', { name: 'Prompt caching', exact: true }).check();
  }, 'true');
});

test('slider with an exact input kept in sync', async ({ page }) => {
  await roundTrip(page, 'worker', 'worker.claim_batch_size', async (k) => {
    await page.getByLabel('Claim batch size (slider)').fill('37');
    await expect(k.input()).toHaveValue('37');
    await k.input().fill('25');
    await expect(page.getByLabel('Claim batch size (slider)')).toHaveValue('25');
  }, '25');
});

test('decimal slider', async ({ page }) => {
  await roundTrip(page, 'models', 'models.platform_default_temperature', async (k) => {
    await k.input().fill('0.75');
  }, '0.75');
});

test('dropdown', async ({ page }) => {
  await roundTrip(page, 'worker', 'worker.claim_ordering', async () => {
    await page.getByLabel('Claim ordering', { exact: true }).selectOption('block_index_desc');
  }, '"block_index_desc"');
});

test('numeric input with bounds', async ({ page }) => {
  await roundTrip(page, 'models', 'models.platform_default_max_tokens', async () => {
    await page.getByLabel('Default max output tokens', { exact: true }).fill('8192');
  }, '8192');
});

test('textarea with a character count', async ({ page }) => {
  await roundTrip(page, 'worker', 'worker.default_system_prompt', async (k) => {
    await k.input().fill('Be brief.');
    await expect(page.getByTestId('count-worker.default_system_prompt')).toHaveText('9 / 20000 characters');
  }, '"Be brief."');
});

test('tag list', async ({ page }) => {
  await roundTrip(page, 'upload', 'upload.allowed_extensions', async () => {
    await page.getByRole('button', { name: 'Remove docx' }).click();
    await page.getByLabel('Add to Allowed file extensions').fill('json');
    await page.getByLabel('Add to Allowed file extensions').press('Enter');
    await expect(page.getByTestId('tags-upload.allowed_extensions')).toContainText('json');
  }, '["pdf","txt","md","html","csv","json"]');
});

test('table editor for providers, whose changes a second superuser approves', async ({ page, browser }) => {
  await open(page, 'models');
  const k = new KeyPanel(page, 'models.provider_registry');
  await expect(page.getByTestId('review-models.provider_registry')).toBeVisible();
  await page.getByLabel('Models of provider openai').fill('gpt-4.1, gpt-4.1-mini, o3');
  await page.getByLabel('Models of provider openai').blur();
  await page.getByTestId('provider-add').click();
  await page.getByLabel('Id of provider 4').fill('mistral');
  await page.getByLabel('Id of provider 4').blur();
  await page.getByLabel('Models of provider mistral').fill('mistral-large');
  await page.getByLabel('Models of provider mistral').blur();
  await page.getByLabel('Provider mistral enabled').check();
  await k.save('add o3 and mistral');
  // A change request, not a change: nothing applied until someone else approves it.
  await expect(k.outcome()).toContainText('needs a second superuser');
  await expect(k.provenance()).toContainText('(source=default)');
  await approveAll(browser);
  await page.reload();
  await waitForHydration(page);
  await expect(k.provenance()).toContainText('(source=admin)');
  await expect(k.history()).toContainText('openai: added o3');
  await expect(k.history()).toContainText('added provider mistral (mistral-large)');
  // The default-model dropdown offers the new models.
  await expect(page.getByLabel('Default model', { exact: true })).toContainText('mistral/mistral-large');

  // Disabling the provider of the default model is refused at once, naming both keys: a
  // request must be one that could be applied.
  await page.getByLabel('Provider anthropic enabled').uncheck();
  await k.save();
  await expect(k.outcome()).toContainText('models.provider_registry');
  await expect(k.outcome()).toContainText('models.platform_default_model');

  await page.reload();
  await waitForHydration(page);
  await expect(page.getByLabel('Provider mistral enabled')).toBeChecked();
  await k.reset();
  await expect(k.outcome()).toContainText('needs a second superuser');
  await approveAll(browser);
  await page.reload();
  await waitForHydration(page);
  await expect(k.provenance()).toContainText('(source=default)');
});

test('a validation error shows next to the field in the server words', async ({ page }) => {
  await open(page, 'worker');
  const k = new KeyPanel(page, 'worker.claim_batch_size');
  await k.input().fill('500');
  await k.save();
  await expect(k.outcome()).toHaveText('worker.claim_batch_size must be an integer from 1 to 100, got 500');
  await expect(k.provenance()).toContainText('(source=default)');
  // The input is kept for correction.
  await expect(k.input()).toHaveValue('500');
});

test('saving the value in force says unchanged', async ({ page }) => {
  await open(page, 'worker');
  const k = new KeyPanel(page, 'worker.claim_batch_size');
  const before = await k.history().locator('summary').first().textContent();
  await k.save();
  await expect(k.outcome()).toContainText('Unchanged');
  await expect(k.history().locator('summary').first()).toHaveText(before!);
});

test('a conflict shows who, when and their value, and keeps the input', async ({ page }) => {
  await open(page, 'models');
  const key = 'models.platform_default_max_tokens';
  const k = new KeyPanel(page, key);
  await k.input().fill('7000');
  cliSet(key, '6000');
  await k.save();
  // The CLI's actor is the operating system's user, not $USER.
  await expect(k.outcome()).toContainText(/cli:\S+ changed it at/);
  await expect(page.getByTestId(`conflict-value-${key}`)).toHaveText('6000');
  await expect(k.input()).toHaveValue('7000');
  await page.getByTestId(`reload-${key}`).click();
  await expect(k.provenance()).toHaveText('effective=6000 (source=admin)');
  await expect(k.input()).toHaveValue('7000');
  await k.save('override');
  await expect(k.provenance()).toHaveText('effective=7000 (source=admin)');
  cliUnset(key);
});

test.describe('a lost answer', () => {
  // The browser's own lines about the dropped connection and the 503 below.
  test.use({ allowedConsoleErrors: [/ERR_INTERNET_DISCONNECTED|status of 503/] });

  test('a save that gets no page back says so and keeps the page and what was typed', async ({ page }) => {
    const key = 'worker.claim_batch_size';
    await open(page, 'worker');
    const k = new KeyPanel(page, key);
    const address = page.url();
    await k.input().fill('41');
    await k.reason().fill('through an outage');
    // The connection drops.
    await page.route('**/api/save_policy', (route) => route.abort('internetdisconnected'));
    await k.save();
    await expect(page.getByTestId('nav-error')).toContainText('the server could not be reached');
    expect(page.url()).toBe(address);
    await expect(k.input()).toHaveValue('41');
    await expect(k.reason()).toHaveValue('through an outage');
    // A proxy in front answers with an error of its own.
    await page.unroute('**/api/save_policy');
    await page.route('**/api/save_policy', (route) =>
      route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":"the service is restarting","status":503}' }));
    await k.save();
    await expect(page.getByTestId('nav-error')).toHaveText('Not done: the server answered 503: the service is restarting');
    expect(page.url()).toBe(address);
    await expect(k.input()).toHaveValue('41');
    await expect(k.provenance()).toContainText('(source=default)');
    // Back to normal: sending it again saves it, and the message goes.
    await page.unroute('**/api/save_policy');
    await k.save();
    await expect(k.provenance()).toHaveText('effective=41 (source=admin)');
    await expect(page.getByTestId('nav-error')).toHaveCount(0);
    cliUnset(key);
  });
});

test('a save comes back to its key, which keeps the keyboard focus', async ({ page }) => {
  const key = 'worker.default_block_prompt';
  await open(page, 'worker');
  const k = new KeyPanel(page, key);
  // The key is below the first screen.
  await expect(k.root).not.toBeInViewport();
  await k.input().fill('Focus: {{block_text}}');
  await k.save('e2e focus');
  await expect(k.provenance()).toHaveText('effective="Focus: {{block_text}}" (source=admin)');
  await expect(k.root).toBeInViewport();
  await expect(k.root).toBeFocused();
  cliUnset(key);
});

test('a second click on Save while the first is on its way sends nothing more', async ({ page }) => {
  const key = 'worker.default_block_prompt';
  await open(page, 'worker');
  const k = new KeyPanel(page, key);
  await k.input().fill('Once: {{block_text}}');
  let sent = 0;
  await page.route('**/api/save_policy', async (route) => {
    sent += 1;
    await new Promise((done) => setTimeout(done, 500));
    await route.continue();
  });
  await page.getByTestId(`save-${key}`).dblclick();
  await expect(k.provenance()).toHaveText('effective="Once: {{block_text}}" (source=admin)');
  await expect(k.outcome()).toContainText('Saved');
  expect(sent).toBe(1);
  await page.unroute('**/api/save_policy');
  cliUnset(key);
});

test('a draft kept across pages never overwrites a change made since it was begun', async ({ page }) => {
  const key = 'worker.claim_batch_size';
  await open(page, 'worker');
  const k = new KeyPanel(page, key);
  await k.input().fill('40');
  await expect(page.getByTestId(`unsaved-${key}`)).toBeVisible();
  // Someone else changes the key while the draft waits in the tab.
  cliSet(key, '30');
  await page.getByTestId('nav-models').click();
  await expect(page.getByTestId('panel-title')).toHaveText('Models');
  await page.getByTestId('nav-worker').click();
  await expect(k.provenance()).toHaveText('effective=30 (source=admin)');
  await expect(k.input()).toHaveValue('40');
  await expect(page.getByTestId(`stale-${key}`)).toBeVisible();
  // Saving shows their change instead of replacing it unseen; saving again replaces it.
  await k.save();
  await expect(page.getByTestId(`conflict-value-${key}`)).toHaveText('30');
  await expect(k.provenance()).toHaveText('effective=30 (source=admin)');
  await expect(k.input()).toHaveValue('40');
  await expect(page.getByTestId(`stale-${key}`)).toHaveCount(0);
  await k.save('seen theirs');
  await expect(k.provenance()).toHaveText('effective=40 (source=admin)');
  cliUnset(key);
});

test('revert to an earlier value after a confirmation', async ({ page }) => {
  await open(page, 'upload');
  const k = new KeyPanel(page, 'upload.max_files_per_batch');
  await k.input().fill('30');
  await k.save('first');
  await expect(k.provenance()).toHaveText('effective=30 (source=admin)');
  await k.input().fill('60');
  await k.save('second');
  await expect(k.provenance()).toHaveText('effective=60 (source=admin)');
  const first = k.history().locator('li.history__row').filter({ hasText: 'Reason: first' });
  await first.getByText('Revert to this value…').click();
  await first.getByRole('button', { name: 'Confirm revert' }).click();
  await expect(k.provenance()).toHaveText('effective=30 (source=admin)');
  await expect(k.history()).toContainText('revert');
  await expect(page.getByTestId('chart-upload.max_files_per_batch')).toBeVisible();
  await k.reset();
});

test('a key set in the environment shows source=env', async ({ page }) => {
  await open(page, 'upload');
  const k = new KeyPanel(page, 'upload.max_files_per_batch');
  await expect(k.provenance()).toHaveText('effective=42 (source=env)');
  await expect(page.getByTestId('layer-env-upload.max_files_per_batch')).toHaveText('42');
  await expect(page.getByTestId('layer-default-upload.max_files_per_batch')).toHaveText('20');
});

test('deep links open the category at the key', async ({ page }) => {
  await page.goto('/app/settings/superuser/worker?key=worker.max_retries');
  await waitForHydration(page);
  await expect(page.getByTestId('key-worker.max_retries')).toHaveClass(/key--focused/);
});

test('the audit log filters and exports CSV', async ({ page }) => {
  await open(page, 'worker');
  const k = new KeyPanel(page, 'worker.claim_batch_size');
  await k.input().fill('11');
  await k.save('for the audit log');
  await expect(k.provenance()).toHaveText('effective=11 (source=admin)');
  await k.reset();
  await expect(k.provenance()).toContainText('(source=default)');

  await page.getByRole('link', { name: 'Audit log', exact: true }).click();
  await expect(page.getByTestId('audit-table')).toBeVisible();
  await page.getByTestId('filter-key').selectOption('worker.claim_batch_size');
  await page.getByTestId('filter-actor').fill(accounts.superuser.email);
  await page.getByTestId('filter-apply').click();
  await expect(page).toHaveURL(/key=worker.claim_batch_size/);
  const rows = page.getByTestId('audit-row');
  await expect(rows.first()).toContainText('worker.claim_batch_size');
  for (const text of await rows.allTextContents()) expect(text).toContain('worker.claim_batch_size');
  await expect(rows.filter({ hasText: 'for the audit log' })).toHaveCount(1);

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()]);
  expect(download.suggestedFilename()).toMatch(/^runtime-policy-audit-\d{8}T\d{6}Z\.csv$/);
  const csv = require('node:fs').readFileSync(await download.path(), 'utf8') as string;
  const lines = csv.trim().split(/\r\n/);
  expect(lines[0]).toBe(
    'id,at,key,action,actor_id,actor_email,from,to,reason,policy_revision,key_version,reverted_audit_id,' +
      'from_effective,from_source,to_effective,to_source,change_set_id',
  );
  expect(lines.length).toBe((await rows.count()) + 1);
  expect(lines.slice(1).every((l) => l.includes(',worker.claim_batch_size,'))).toBe(true);

  const json = await page.request.get(`/api/v1/audit/export.json?key=worker.claim_batch_size&actor=${encodeURIComponent(accounts.superuser.email)}`);
  expect(json.headers()['content-type']).toBe('application/json');
  expect((await json.json()).length).toBe(lines.length - 1);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('saving and resetting still work as plain forms', async ({ page }) => {
    const login = new LoginPage(page);
    await login.open('/app/settings/superuser/worker');
    await login.signIn(accounts.superuser, { js: false });
    await expect(page).toHaveURL(/\/app\/settings\/superuser\/worker$/);
    const k = new KeyPanel(page, 'worker.claim_batch_size');
    await k.input().fill('64');
    await k.save('no script');
    await expect(page).toHaveURL(/\/app\/settings\/superuser\/worker\?key=worker.claim_batch_size&notice=saved/);
    await expect(k.provenance()).toHaveText('effective=64 (source=admin)');
    await expect(k.history()).toContainText('Reason: no script');
    await expect(k.outcome()).toContainText('Saved');

    await k.input().fill('0');
    await k.save();
    await expect(k.outcome()).toContainText('worker.claim_batch_size must be an integer from 1 to 100, got 0');
    await expect(k.provenance()).toHaveText('effective=64 (source=admin)');

    await k.reset();
    await expect(k.provenance()).toContainText('(source=default)');
  });
});
