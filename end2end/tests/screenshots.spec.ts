import { test, expect, waitForHydration, accounts, signIn } from './fixtures';

// Every category at desktop and phone width, into end2end/screenshots/ (not committed), for a
// person to look at. The test also checks that nothing overflows the phone's width.
const categories = ['models', 'worker', 'optimization', 'upload', 'audit'];

for (const [name, width, height] of [['desktop', 1280, 900], ['phone', 390, 844]] as const) {
  test(`every category renders at ${width}px`, async ({ page }) => {
    await page.setViewportSize({ width, height });
    await signIn(page, accounts.superuser);
    for (const c of categories) {
      await page.goto(`/app/settings/superuser/${c}`);
      await waitForHydration(page);
      await expect(page.getByTestId('detail-panel')).toBeVisible();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, `${c} overflows at ${width}px`).toBeLessThanOrEqual(0);
      await page.screenshot({ path: `screenshots/${c}-${name}.png`, fullPage: true });
    }
    await page.goto('/app/runs');
    await waitForHydration(page);
    await page.screenshot({ path: `screenshots/runs-${name}.png`, fullPage: true });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, `runs overflow at ${width}px`).toBeLessThanOrEqual(0);
  });
}
