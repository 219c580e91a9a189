import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Page } from '@playwright/test';
import { test, expect, waitForHydration } from './fixtures';

// The same binary the server runs, against the same database (end2end/run.sh sets both).
const serverCmd = process.env.E2E_SERVER_CMD ?? 'target/release/runtime-policy serve';
const bin = path.resolve(__dirname, '..', '..', serverCmd.split(' ')[0]);

const member = { email: `upload-member-${Date.now()}@e2e.example`, password: `upload-member-pw-${Date.now()}` };

test.beforeAll(() => {
  execFileSync(bin, ['user', 'create', member.email, '--role', 'member'], {
    input: `${member.password}\n`,
    env: { ...process.env, DATABASE_URL: process.env.E2E_DATABASE_URL ?? '', RUST_LOG: 'warn' },
    encoding: 'utf8',
  });
});

async function signIn(page: Page, { js = true } = {}) {
  await page.goto(`/login?next=${encodeURIComponent('/app/runs')}`);
  if (js) await waitForHydration(page);
  await page.getByTestId('login-email').fill(member.email);
  await page.getByTestId('login-password').fill(member.password);
  await page.getByTestId('login-submit').click();
  await expect(page).toHaveURL(/\/app\/runs$/);
  if (js) await waitForHydration(page);
}

const threeFiles = [
  { name: 'minutes.txt', mimeType: 'text/plain', buffer: Buffer.from('Agenda item one.\n\nAgenda item two.') },
  { name: 'notes.md', mimeType: 'text/markdown', buffer: Buffer.from('# Notes\n\nA single note.') },
  { name: 'orders.csv', mimeType: 'text/csv', buffer: Buffer.from('order,total\n1,9.99\n2,15.00\n3,4.50\n') },
];

function expectFilesAndBlocks(page: Page) {
  return Promise.all([
    expect(page.getByTestId('run-file-0')).toContainText('minutes.txt'),
    expect(page.getByTestId('run-file-blocks-0')).toHaveText('2'),
    expect(page.getByTestId('run-file-1')).toContainText('notes.md'),
    expect(page.getByTestId('run-file-blocks-1')).toHaveText('2'),
    expect(page.getByTestId('run-file-2')).toContainText('orders.csv'),
    expect(page.getByTestId('run-file-blocks-2')).toHaveText('3'),
    expect(page.getByTestId('run-block-0')).toContainText('minutes.txt, 1'),
    expect(page.getByTestId('run-block-0')).toContainText('Agenda item one.'),
    expect(page.getByTestId('run-block-6')).toContainText('orders.csv, 3'),
    expect(page.getByTestId('run-block-6')).toContainText('3,4.50'),
    expect(page.getByTestId('run-counts')).toHaveText('0 done, 0 failed, 0 claimed, 7 pending'),
  ]);
}

test.describe('with JavaScript', () => {
  // The browser reports the refused upload's 422 answer on the console.
  test.use({ allowedConsoleErrors: [/status of 422/] });

  test('a member uploads three files and sees their blocks; a refusal names the key', async ({ page }) => {
    await signIn(page);
    await page.getByTestId('run-files').setInputFiles(threeFiles);
    await page.getByTestId('run-upload').click();
    await expect(page).toHaveURL(/\/app\/runs\/\d+$/);
    await expectFilesAndBlocks(page);

    await page.getByRole('link', { name: 'All runs' }).click();
    await expect(page).toHaveURL(/\/app\/runs$/);
    await page.getByTestId('run-files').setInputFiles([
      { name: 'tool.exe', mimeType: 'application/octet-stream', buffer: Buffer.from('MZ') },
    ]);
    await page.getByTestId('run-upload').click();
    const error = page.getByTestId('upload-error');
    await expect(error).toContainText('upload.allowed_extensions is');
    await expect(error).toContainText('(source=');
    await expect(error).toContainText('"tool.exe" has extension "exe"');
    await expect(page).toHaveURL(/\/app\/runs$/);

    // A file over the limit is refused before anything is sent.
    let sent = false;
    page.on('request', (r) => { if (r.method() === 'POST' && r.url().includes('/app/runs/upload')) sent = true; });
    await page.getByTestId('run-files').setInputFiles([
      { name: 'huge.txt', mimeType: 'text/plain', buffer: Buffer.alloc(11 * 1024 * 1024, 'a') },
    ]);
    await page.getByTestId('run-upload').click();
    await expect(error).toHaveText('files: "huge.txt" holds 11.0 MiB; at most 10.0 MiB per file');
    expect(sent).toBe(false);
  });
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the upload form works and shows a refusal', async ({ page }) => {
    await signIn(page, { js: false });
    await page.getByTestId('run-files').setInputFiles(threeFiles);
    await page.getByTestId('run-upload').click();
    await expect(page).toHaveURL(/\/app\/runs\/\d+$/);
    await expectFilesAndBlocks(page);

    await page.goto('/app/runs');
    await page.getByTestId('run-files').setInputFiles([
      { name: 'fake.pdf', mimeType: 'application/pdf', buffer: Buffer.from('not a pdf at all') },
    ]);
    await page.getByTestId('run-upload').click();
    await expect(page.getByTestId('upload-error')).toContainText('"fake.pdf" is not a PDF');
  });

  test('an upload over the limit comes back to the list with the reason', async ({ page }, info) => {
    // Over 50 MiB: refused before the server reads it, as a page, not as JSON.
    const big = info.outputPath('big.txt');
    fs.writeFileSync(big, Buffer.alloc(52 << 20, 'a'));
    await signIn(page, { js: false });
    await page.getByTestId('run-files').setInputFiles(big);
    await page.getByTestId('run-upload').click();
    await expect(page).toHaveURL(/\/app\/runs\?upload_error=/);
    await expect(page.getByTestId('upload-error')).toContainText(
      'the upload is over 50 MiB; at most 50 MiB in all and 10 MiB per file',
    );
    fs.rmSync(big);
  });
});
