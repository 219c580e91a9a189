import { test, expect, waitForHydration, accounts, signIn, LoginPage } from './fixtures';

// The settings page is for superusers: every test signs in first (with the plain form when
// JavaScript is off, since the page never hydrates then).
test.beforeEach(async ({ page, javaScriptEnabled }) => {
  if (javaScriptEnabled) {
    await signIn(page, accounts.superuser);
  } else {
    const login = new LoginPage(page);
    await login.open('/app/settings/superuser');
    await login.signIn(accounts.superuser, { js: false });
    await expect(page).toHaveURL(/\/app\/settings\/superuser$/);
  }
});

test('selecting a category updates the panel without a page load', async ({ page }) => {
  await page.goto('/app/settings/superuser');
  await waitForHydration(page);
  await expect(page.getByTestId('panel-title')).toHaveText('Models');

  // A full page load would drop this marker.
  await page.evaluate(() => ((window as any).__samePage = true));
  await page.getByRole('navigation', { name: 'Policy categories' }).getByRole('link', { name: 'Worker execution' }).click();

  await expect(page).toHaveURL(/\/app\/settings\/superuser\/worker$/);
  await expect(page.getByTestId('panel-title')).toHaveText('Worker execution');
  await expect(page.getByTestId('nav-worker')).toHaveAttribute('aria-current', 'page');
  expect(await page.evaluate(() => (window as any).__samePage)).toBe(true);
});

test('the root redirects to the settings page', async ({ page }) => {
  await page.goto('/');
  await expect(page).toHaveURL(/\/app\/settings\/superuser$/);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('categories still work as plain links', async ({ page }) => {
    await page.goto('/app/settings/superuser');
    await page.getByRole('link', { name: 'Upload', exact: true }).click();
    await expect(page).toHaveURL(/\/app\/settings\/superuser\/upload$/);
    await expect(page.getByTestId('panel-title')).toHaveText('Upload');
  });
});
