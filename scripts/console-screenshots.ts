/**
 * `npm run console:screenshots`: regenerate docs/img/console-{graph,detail,tap}.png, the screenshots in
 * docs/console.md. Runs the demo mesh and its console as `meshtel demo` does (src/demo/console.ts), opens it in
 * headless Debian chromium at 1280×800 and waits on what the page shows (never on sleeps) before each shot:
 * every edge with a full rate window, the faulty edge's charts, tap rows including an injected 500. Fails, writing
 * nothing, if the page logs an error.
 *
 *   npm run console:screenshots [-- --out docs/img]
 */
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDemo } from '../src/demo/demo.js';
import { DEMO_CONSOLE_WINDOW_SECONDS, startDemoConsole } from '../src/demo/console.js';
import { DEMO_EDGES, FAULTY_EDGE, clickElement, launchChromium, openConsole, requestsInWindow, waitForGraph } from '../test/e2e/support/console-page.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outArg = process.argv.indexOf('--out');
const outDir = path.resolve(outArg > 0 ? (process.argv[outArg + 1] ?? 'docs/img') : path.join(root, 'docs/img'));
const SHOTS = ['console-graph.png', 'console-detail.png', 'console-tap.png'] as const;

/** Poll `fn` every 250 ms until true, or throw naming `what`. */
async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function main(): Promise<void> {
  const demo = await startDemo({ rate: 20, failRate: 0.2 });
  const web = await startDemoConsole(demo);
  const browser = await launchChromium();
  // Shots go to a temporary directory and replace the old ones only when all three were taken.
  const tmp = path.join(outDir, '.console-screenshots.tmp');
  mkdirSync(tmp, { recursive: true });
  try {
    const { page, errors } = await openConsole(browser, web.url);
    process.stdout.write(`console ${web.url}: waiting for a full ${DEMO_CONSOLE_WINDOW_SECONDS}s rate window...\n`);
    await waitForGraph(page, 'every demo edge over a full window', DEMO_EDGES, (g) => g.windowSeconds >= DEMO_CONSOLE_WINDOW_SECONDS - 1 && g.edges.every((e) => requestsInWindow(g, e) > 0 || e.protocol === 'tcp'), 180_000);
    await page.screenshot({ path: path.join(tmp, 'console-graph.png') });

    await clickElement(page, FAULTY_EDGE);
    await until('the detail charts of the faulty edge', async () => (await page.locator('#panel-detail svg.chart path[d*="L"]').count()) >= 3);
    await page.screenshot({ path: path.join(tmp, 'console-detail.png') });

    await page.click('#tab-tap');
    await page.click('#tap-toggle');
    await until('tap rows with an injected 500', async () => (await page.locator('#tap-table tbody tr').count()) >= 15 && (await page.locator('#tap-table tbody td:nth-child(7)').allTextContents()).includes('500'));
    await page.screenshot({ path: path.join(tmp, 'console-tap.png') });
    await page.click('#tap-toggle');

    if (errors.length > 0) throw new Error(`the page logged errors:\n${errors.join('\n')}`);
    for (const f of SHOTS) renameSync(path.join(tmp, f), path.join(outDir, f));
    process.stdout.write(`wrote ${SHOTS.map((f) => path.relative(process.cwd(), path.join(outDir, f))).join(', ')}\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    await browser.close();
    await web.close();
    await demo.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`console:screenshots: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
