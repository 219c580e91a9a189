import { createServer, IncomingMessage } from 'node:http';
import { createHmac } from 'node:crypto';
import { test, expect, waitForHydration, accounts, signIn } from './fixtures';

const page_ = '/app/settings/superuser/integrations';

test('create and revoke an API token, and see a signed test delivery arrive', async ({ page }) => {
  // A local receiver that records what it gets.
  const got: { headers: IncomingMessage['headers']; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ headers: req.headers, body });
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const secret = 'e2e-webhook-secret-0123456789';
  try {
    await signIn(page, accounts.superuser, page_);
    await waitForHydration(page);

    // A token, shown once, then listed and revoked.
    await page.getByTestId('token-name').fill('e2e-ci');
    await page.getByTestId('token-write').check();
    await page.getByTestId('token-create').click();
    await expect(page.getByTestId('new-token')).toHaveText(/^rpa_[0-9a-f]{64}$/);
    const token = (await page.getByTestId('new-token').textContent())!;
    const res = await page.request.get('/api/v1/policy/worker.claim_batch_size', {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(res.status()).toBe(200);
    await expect(page.getByTestId('token-e2e-ci')).toContainText('policy:read policy:write');
    await page.getByTestId('revoke-e2e-ci').click();
    await expect(page.getByTestId('token-e2e-ci')).toContainText('revoked');
    const refused = await page.request.get('/api/v1/policy', { headers: { Authorization: `Bearer ${token}` } });
    expect(refused.status()).toBe(401);

    // A webhook, sent a test by the server's own sender.
    await page.getByTestId('webhook-url').fill(`http://127.0.0.1:${port}/hook`);
    await page.getByTestId('webhook-secret').fill(secret);
    await page.getByTestId('webhook-add').click();
    await expect(page.getByTestId('integration-outcome')).toContainText('registered');
    const row = page.locator('[data-testid^="webhook-"]').filter({ hasText: `127.0.0.1:${port}` });
    await row.getByRole('button', { name: 'Send test' }).click();
    await expect.poll(() => got.length, { timeout: 10_000 }).toBeGreaterThan(0);
    const { headers, body } = got[0];
    expect(headers['x-runtime-policy-event']).toBe('test');
    const sig = String(headers['x-runtime-policy-signature']);
    const t = sig.match(/^t=(\d+),/)![1];
    expect(sig).toBe(`t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`);
    // The log shows it delivered.
    await expect
      .poll(async () => {
        await page.reload();
        await waitForHydration(page);
        return page.locator('[data-testid="deliveries-table"] [data-status="delivered"]').count();
      })
      .toBeGreaterThan(0);
    await row.getByRole('button', { name: 'Disable' }).click();
    await expect(page.getByTestId('integration-outcome')).toContainText('disabled');
  } finally {
    server.close();
  }
});
