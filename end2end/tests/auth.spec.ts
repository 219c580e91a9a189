import { test, expect, waitForHydration, accounts, LoginPage, signIn } from './fixtures';

test('anonymous visitors are sent to the login page', async ({ page }) => {
  const res = await page.goto('/app/settings/superuser/worker');
  expect(res?.ok()).toBe(true);
  await expect(page).toHaveURL(/\/login\?next=%2Fapp%2Fsettings%2Fsuperuser%2Fworker$|\/login\?next=\/app\/settings\/superuser\/worker$/);
  await expect(page.getByTestId('login-page')).toBeVisible();
});

test('a superuser signs in, reaches the settings page they asked for, and signs out', async ({ page }) => {
  await page.goto('/app/settings/superuser/worker');
  await new LoginPage(page).signIn(accounts.superuser);
  await expect(page).toHaveURL(/\/app\/settings\/superuser\/worker$/);
  await waitForHydration(page);
  await expect(page.getByTestId('panel-title')).toHaveText('Worker execution');
  await expect(page.getByTestId('whoami')).toHaveText(accounts.superuser.email);
  // An edit left unsaved and one staged: the tab keeps them across pages, never past a sign-out.
  await page.getByTestId('input-worker.claim_batch_size').fill('42');
  await expect(page.getByTestId('unsaved-worker.claim_batch_size')).toBeVisible();
  await page.getByTestId('stage-worker.claim_batch_size').click();
  await expect(page.getByTestId('pending')).toContainText('Pending changes (1)');
  await page.getByTestId('nav-models').click();
  await expect(page.getByTestId('panel-title')).toHaveText('Models');
  await page.getByTestId('nav-worker').click();
  await expect(page.getByTestId('stage-worker.claim_batch_size')).toBeVisible();
  await expect(page.getByTestId('input-worker.claim_batch_size')).toHaveValue('42');

  await page.getByTestId('logout').click();
  await expect(page).toHaveURL(/\/login$/);
  await page.goto('/app/settings/superuser');
  await expect(page).toHaveURL(/\/login\?next=/);
  await new LoginPage(page).signIn(accounts.superuser);
  await expect(page.getByTestId('whoami')).toHaveText(accounts.superuser.email);
  await page.goto('/app/settings/superuser/worker');
  await waitForHydration(page);
  // The Stage button shows once the control has read the tab's store.
  await expect(page.getByTestId('stage-worker.claim_batch_size')).toBeVisible();
  await expect(page.getByTestId('input-worker.claim_batch_size')).not.toHaveValue('42');
  await expect(page.getByTestId('unsaved-worker.claim_batch_size')).toHaveCount(0);
  await expect(page.getByTestId('pending')).toHaveCount(0);
});

test('what one user left in the tab is not shown to the next who signs in there', async ({ page }) => {
  await signIn(page, accounts.superuser, '/app/settings/superuser/worker');
  await waitForHydration(page);
  await page.getByTestId('input-worker.claim_batch_size').fill('43');
  await expect(page.getByTestId('unsaved-worker.claim_batch_size')).toBeVisible();
  await page.getByTestId('stage-worker.claim_batch_size').click();
  await expect(page.getByTestId('pending')).toContainText('Pending changes (1)');
  // The session runs out (nobody signs out) and someone else signs in, in the same tab.
  await page.context().clearCookies();
  await page.goto('/app/settings/superuser/worker');
  await new LoginPage(page).signIn(accounts.reviewer);
  await expect(page.getByTestId('whoami')).toHaveText(accounts.reviewer.email);
  await expect(page.getByTestId('panel-title')).toHaveText('Worker execution');
  await waitForHydration(page);
  // The Stage button shows once the control has read the tab's store.
  await expect(page.getByTestId('stage-worker.claim_batch_size')).toBeVisible();
  await expect(page.getByTestId('input-worker.claim_batch_size')).not.toHaveValue('43');
  await expect(page.getByTestId('unsaved-worker.claim_batch_size')).toHaveCount(0);
  await expect(page.getByTestId('pending')).toHaveCount(0);
});

test.describe('a member', () => {
  // The browser reports the 403 answer itself as a console error.
  test.use({ allowedConsoleErrors: [/status of 403/] });

  test('who signs in lands on the runs and gets the 403 page on the settings', async ({ page }) => {
  await signIn(page, accounts.member);
  await expect(page).toHaveURL(/\/app\/runs$/);
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings' })).toHaveCount(0);
  await page.goto('/app/settings/superuser');
  await expect(page.getByTestId('forbidden')).toBeVisible();
  await expect(page.getByTestId('detail-panel')).toHaveCount(0);
  const status = await page.evaluate(async () => (await fetch('/app/settings/superuser')).status);
  expect(status).toBe(403);
  });
});

test.describe('a wrong password', () => {
  test.use({ allowedConsoleErrors: [/status of 401/] });

  test('is refused with a message and no session', async ({ page }) => {
    const login = new LoginPage(page);
    await login.open();
    await login.signIn({ email: accounts.superuser.email, password: 'not the password' });
    await expect(page.getByTestId('login-error')).toHaveText('Wrong email or password.');
    await page.goto('/app/settings/superuser');
    await expect(page).toHaveURL(/\/login\?next=/);
  });
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('sign-in and sign-out still work as plain forms', async ({ page }) => {
    await page.goto('/app/settings/superuser/upload');
    await expect(page).toHaveURL(/\/login\?next=/);
    await new LoginPage(page).signIn(accounts.superuser, { js: false });
    await expect(page).toHaveURL(/\/app\/settings\/superuser\/upload$/);
    await expect(page.getByTestId('panel-title')).toHaveText('Upload');
    await page.getByTestId('logout').click();
    await expect(page).toHaveURL(/\/login$/);
  });

  test('a wrong password shows the message', async ({ page }) => {
    const login = new LoginPage(page);
    await login.open();
    await login.signIn({ email: accounts.member.email, password: 'not the password' }, { js: false });
    await expect(page.getByTestId('login-error')).toHaveText('Wrong email or password.');
  });
});
