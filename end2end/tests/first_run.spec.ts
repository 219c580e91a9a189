import { spawn, ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect, waitForHydration } from './fixtures';

/** A free port on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/**
 * A server of its own on an empty database (the shared one already has users), and the setup
 * address it prints at start.
 */
async function startEmptyServer(): Promise<{ server: ChildProcess; setupUrl: string; base: string; dir: string }> {
  const bin = process.env.E2E_BIN;
  if (!bin) throw new Error('E2E_BIN is not set: run the end-to-end tests through end2end/run.sh');
  const dir = mkdtempSync(join(tmpdir(), 'rp-first-run-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(bin, ['serve'], {
    cwd: join(__dirname, '..', '..'),
    env: {
      ...process.env,
      DATABASE_URL: `sqlite://${dir}/first-run.db`,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: 'target/site',
      RUST_LOG: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let printed = '';
  const setupUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no setup address within 20 s; the server printed:\n${printed}`)), 20_000);
    server.stdout!.on('data', (chunk) => {
      printed += chunk.toString();
      const found = printed.match(/http:\/\/\S+\/setup\?token=[0-9a-f]+/);
      if (found) {
        clearTimeout(timer);
        resolve(found[0]);
      }
    });
    server.stderr!.on('data', (chunk) => (printed += chunk.toString()));
    server.on('exit', (code) => reject(new Error(`the server exited (${code}):\n${printed}`)));
  });
  return { server, setupUrl, base, dir };
}

test.describe('first run', () => {
  // The browser reports the refused pages' 403 and the mismatched passwords' 422 itself.
  test.use({ allowedConsoleErrors: [/status of (403|422)/] });

  test('the printed address creates the first superuser, once', async ({ page }) => {
    const { server, setupUrl, base, dir } = await startEmptyServer();
    try {
      expect(setupUrl.startsWith(`${base}/setup?token=`)).toBe(true);
      // The sign-in page says where to look.
      await page.goto(`${base}/login`);
      await expect(page.getByTestId('first-run-hint')).toContainText('/setup?token=');

      // A wrong token is refused.
      const wrong = await page.goto(`${base}/setup?token=0123456789abcdef`);
      expect(wrong?.status()).toBe(403);
      await expect(page.getByTestId('setup-refused')).toBeVisible();

      await page.goto(setupUrl);
      await waitForHydration(page);
      await page.getByTestId('setup-email').fill('first@e2e.example');
      await page.getByTestId('setup-password').fill('first superuser password');
      await page.getByTestId('setup-password-again').fill('not the same password');
      await page.getByTestId('setup-submit').click();
      await expect(page.getByTestId('setup-error')).toContainText('the two passwords differ');

      await page.getByTestId('setup-password-again').fill('first superuser password');
      await page.getByTestId('setup-submit').click();
      await expect(page).toHaveURL(/\/app\/settings\/superuser$/);
      await expect(page.getByTestId('whoami')).toHaveText('first@e2e.example');

      // Used: the same address is refused now.
      const again = await page.goto(setupUrl);
      expect(again?.status()).toBe(403);
      await expect(page.getByTestId('setup-done')).toBeVisible();
    } finally {
      server.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
