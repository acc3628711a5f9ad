/**
 * Driving the meshtel console (src/console) in headless Debian chromium through playwright-core: launch, open the
 * page at 1280×800 collecting every console error and uncaught exception, wait on what the page shows (never on
 * sleeps), click graph elements where they are drawn. The browser test (test/e2e/console.test.ts) and
 * `npm run console:screenshots` (scripts/console-screenshots.ts) both drive the page through these.
 */
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import type { Core } from 'cytoscape';
import type { GraphEdge, MeshGraph } from '../../../src/console/graph.js';
import { findBinary, requireBinary } from '../../deploy/binaries.js';

/** The page's debugging handle (`window.__meshtel` in src/console/assets/app.js). */
export interface ConsoleGlobal {
  __meshtel: { cy: Core; state: { graph: MeshGraph | null; config: { taps: string[]; warmUpUntil?: number } | null } };
}

/** True when chromium exists; under CI=true its absence throws with a clear message. */
export function hasChromium(): boolean {
  return requireBinary('chromium') !== undefined;
}

/** Launch headless chromium (Debian's /usr/bin/chromium). */
export async function launchChromium(): Promise<Browser> {
  const executablePath = findBinary('chromium');
  if (executablePath === undefined) throw new Error('chromium is missing: apt-get install -y chromium');
  return chromium.launch({
    executablePath,
    headless: true,
    // Chromium's sandbox refuses to run as root (CI containers); a test page on loopback needs no sandbox.
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
    timeout: 60_000,
  });
}

/** An open console page and everything it reported as an error so far. */
export interface ConsolePage {
  readonly page: Page;
  /** Console messages of type `error` and uncaught exceptions, in order. */
  readonly errors: string[];
}

/** Open the console at `url` in a 1280×800 page. */
export async function openConsole(browser: Browser, url: string): Promise<ConsolePage> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console.error: ${m.text()} (${m.location().url}:${m.location().lineNumber})`);
  });
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  await page.goto(url, { waitUntil: 'load' });
  return { page, errors };
}

/** The graph the page drew last (null before the first). */
export async function pageGraph(page: Page): Promise<MeshGraph | null> {
  return page.evaluate(() => (globalThis as unknown as ConsoleGlobal).__meshtel?.state.graph ?? null);
}

/**
 * Wait until the page's graph holds every edge in `edgeIds` and `ready(graph)` holds, then return that graph.
 * Polls the page every 250 ms (a condition, not a sleep); throws after `timeoutMs` naming what it waited for.
 */
export async function waitForGraph(page: Page, what: string, edgeIds: readonly string[], ready: (g: MeshGraph) => boolean, timeoutMs: number): Promise<MeshGraph> {
  const deadline = Date.now() + timeoutMs;
  let last: MeshGraph | null = null;
  for (;;) {
    last = await pageGraph(page);
    if (last && edgeIds.every((id) => last?.edges.some((e) => e.id === id)) && ready(last)) return last;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const have = last ? last.edges.map((e) => `${e.id} ${e.rps.toFixed(1)}/s ${e.health}`).join('; ') : 'no graph';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; the page shows: ${have}`);
}

/** Where an element is drawn, in page coordinates (an edge: its midpoint; a node: its centre). */
export async function elementPosition(page: Page, id: string): Promise<{ x: number; y: number }> {
  return page.evaluate((elementId) => {
    const { cy } = (globalThis as unknown as ConsoleGlobal).__meshtel;
    const el = cy.getElementById(elementId);
    if (el.empty()) throw new Error(`no graph element ${elementId}`);
    const p = el.isEdge() ? el.renderedMidpoint() : (el as unknown as { renderedPosition(): { x: number; y: number } }).renderedPosition();
    const box = (cy.container() as unknown as { getBoundingClientRect(): { left: number; top: number } }).getBoundingClientRect();
    return { x: box.left + p.x, y: box.top + p.y };
  }, id);
}

/** Click a graph element where the page drew it, as a user does. */
export async function clickElement(page: Page, id: string): Promise<void> {
  const { x, y } = await elementPosition(page, id);
  await page.mouse.click(x, y);
}

/** The label and style the page gives an edge: what a user sees of it. */
export async function edgeAppearance(page: Page, id: string): Promise<{ label: string; lineStyle: string; color: string; classes: string[] }> {
  return page.evaluate((edgeId) => {
    const e = (globalThis as unknown as ConsoleGlobal).__meshtel.cy.getElementById(edgeId);
    return { label: String(e.data('label')), lineStyle: e.style('line-style') as string, color: e.style('line-color') as string, classes: e.classes() };
  }, id);
}

/** The demo's edges (Bookinfo): ids as the console names them, `source|target|protocol`. */
export const DEMO_EDGES: readonly string[] = [
  'istio-system/istio-ingressgateway|svc:bookinfo/productpage|http',
  'svc:bookinfo/productpage|bookinfo/productpage-v1|http',
  'bookinfo/productpage-v1|svc:bookinfo/details|http',
  'svc:bookinfo/details|bookinfo/details-v1|http',
  'bookinfo/productpage-v1|svc:bookinfo/reviews|http',
  'svc:bookinfo/reviews|bookinfo/reviews-v1|http',
  'svc:bookinfo/reviews|bookinfo/reviews-v2|http',
  'svc:bookinfo/reviews|bookinfo/reviews-v3|http',
  'bookinfo/reviews-v2|svc:bookinfo/ratings|grpc',
  'bookinfo/reviews-v3|svc:bookinfo/ratings|grpc',
  'svc:bookinfo/ratings|bookinfo/ratings-v1|grpc',
  'bookinfo/ratings-v1|svc:bookinfo/mongodb|tcp',
  'svc:bookinfo/mongodb|bookinfo/mongodb-v1|tcp',
];

/** The edge the demo injects its fault on: the reviews service's leg to reviews-v2 (Kiali's service-node graph). */
export const FAULTY_EDGE = 'svc:bookinfo/reviews|bookinfo/reviews-v2|http';

/** Requests an edge carried in the graph's window (rates are exact deltas over `windowSeconds`). */
export function requestsInWindow(g: MeshGraph, e: GraphEdge): number {
  return Math.round(e.rps * g.windowSeconds);
}
