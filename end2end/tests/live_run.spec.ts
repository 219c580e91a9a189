import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test, expect, accounts, signIn } from './fixtures';

// The same binary the server runs, against the same database (end2end/run.sh sets both).
const serverCmd = process.env.E2E_SERVER_CMD ?? 'target/release/runtime-policy serve';
const bin = path.resolve(__dirname, '..', '..', serverCmd.split(' ')[0]);
const env = { ...process.env, DATABASE_URL: process.env.E2E_DATABASE_URL ?? '', RUST_LOG: 'warn' };

function cli(args: string[], input?: string): string {
  return execFileSync(bin, args, { input, env, encoding: 'utf8' });
}

/** Runs the reference worker on a run until it finishes; resolves with its output. */
function worker(run: number, tokenFile: string, extra: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const args = ['worker', '--run', String(run), '--token-file', tokenFile,
      '--server', `http://127.0.0.1:${process.env.E2E_PORT}`, '--name', 'e2e-worker', ...extra];
    const child = spawn(bin, args, { env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`worker exited ${code}: ${err}`))));
  });
}

test('the run page advances while the reference worker runs, and shows the caching warning', async ({ page }) => {
  const tokenFile = path.join(process.env.E2E_TMP ?? '/tmp', `live-token-${Date.now()}`);
  fs.writeFileSync(tokenFile, cli(['token', 'create', `live-${Date.now()}`]), { mode: 0o600 });
  // Batching and prompt caching on for this run's snapshot, back off afterwards.
  cli(['policy', 'set', 'worker.batching.enabled', 'true', '--reason', 'live run test']);
  cli(['policy', 'set', 'worker.prompt_caching.enabled', 'true', '--reason', 'live run test']);
  const paragraphs = Array.from({ length: 40 }, (_, i) => `Paragraph ${i} of the live run.`).join('\n\n');
  let run: number;
  try {
    run = Number(cli(['run', 'create', '--blocks', '-'], paragraphs).match(/created run (\d+)/)![1]);
  } finally {
    cli(['policy', 'unset', 'worker.batching.enabled']);
    cli(['policy', 'unset', 'worker.prompt_caching.enabled']);
  }

  await signIn(page, accounts.superuser, `/app/runs/${run}`);
  await expect(page.getByTestId('run-counts')).toHaveText('0 done, 0 failed, 0 claimed, 40 pending');
  await expect(page.getByTestId('run-live')).toBeVisible();
  await expect(page.getByTestId('run-events-empty')).toBeVisible();
  // A marker that a page load would wipe: the page must update in place.
  await page.evaluate(() => ((window as unknown as { liveMarker: number }).liveMarker = 1));

  const out = await worker(run, tokenFile, ['--provider-ignores-caching']);
  expect(out).toContain('40 blocks');
  expect(out).toContain('warnings: caching_ignored');

  await expect(page.getByTestId('run-counts')).toHaveText('40 done, 0 failed, 0 claimed, 0 pending', { timeout: 10_000 });
  await expect(page.getByTestId('run-status')).toHaveText('done');
  await expect(page.getByTestId('run-event-caching_ignored')).toContainText('warning');
  await expect(page.getByTestId('run-event-count-caching_ignored')).toHaveText('1');
  await expect(page.getByTestId('run-workers-table')).toContainText('e2e-worker');
  await expect(page.getByTestId('run-block-0')).toContainText('temperature');
  await expect(page.getByTestId('run-live')).toHaveCount(0);
  expect(await page.evaluate(() => (window as unknown as { liveMarker?: number }).liveMarker)).toBe(1);

  // The fleet lists the worker (it holds no claim now that the run is done).
  await page.goto('/app/runs/fleet');
  await expect(page.getByTestId('fleet-worker-e2e-worker')).toBeVisible();
});
