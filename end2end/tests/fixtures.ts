import { test as base, expect, Page } from '@playwright/test';

/**
 * Fails the test on any console error or uncaught page error (hydration warnings included),
 * except those a test declares it expects with `test.use({ allowedConsoleErrors: [...] })`
 * (e.g. the browser's own line about a 401 answer to a wrong password).
 */
export const test = base.extend<{ consoleErrors: string[]; allowedConsoleErrors: RegExp[] }>({
  allowedConsoleErrors: [[], { option: true }],
  consoleErrors: [
    async ({ page, allowedConsoleErrors }, use) => {
      const errors: string[] = [];
      page.on('console', (msg) => {
        if (msg.type() === 'error' || (msg.type() === 'warning' && /hydrat/i.test(msg.text()))) {
          const text = `${msg.type()}: ${msg.text()}`;
          if (!allowedConsoleErrors.some((re) => re.test(text))) {
            errors.push(text);
          }
        }
      });
      page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
      await use(errors);
      expect(errors, 'browser console errors').toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };

/** Waits until the wasm bundle has hydrated the page; clicks before that would be lost. */
export async function waitForHydration(page: Page) {
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

/** The accounts end2end/run.sh created before the server started. */
export const accounts = {
  superuser: { email: env('E2E_SUPERUSER_EMAIL'), password: env('E2E_SUPERUSER_PASSWORD') },
  member: { email: env('E2E_MEMBER_EMAIL'), password: env('E2E_MEMBER_PASSWORD') },
  /** A second superuser, who approves the first one's change requests. */
  reviewer: { email: env('E2E_REVIEWER_EMAIL'), password: env('E2E_REVIEWER_PASSWORD') },
};

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the end-to-end tests through end2end/run.sh`);
  return v;
}

/** The login page. */
export class LoginPage {
  constructor(private page: Page) {}

  async open(next?: string) {
    await this.page.goto(next ? `/login?next=${encodeURIComponent(next)}` : '/login');
  }

  /** Fills and submits the form; with JavaScript on, waits for hydration first. */
  async signIn(account: { email: string; password: string }, { js = true } = {}) {
    if (js) await waitForHydration(this.page);
    await this.page.getByTestId('login-email').fill(account.email);
    await this.page.getByTestId('login-password').fill(account.password);
    await this.page.getByTestId('login-submit').click();
  }
}

/** Signs in as `account` and waits for the page sign-in leads to. */
export async function signIn(page: Page, account: { email: string; password: string }, next?: string) {
  const login = new LoginPage(page);
  await login.open(next);
  await login.signIn(account);
  await expect(page.getByTestId('whoami')).toHaveText(account.email);
}
