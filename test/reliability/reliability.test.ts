/**
 * The reliability suite, short form (issue 11): real sidecars on loopback, each probe once, bounded in
 * count and time. The long form is `npm run soak -- --duration 10m` (test/reliability/soak.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintDefaultWorkloads } from '../sidecar/helpers.js';
import type { MintedWorkload } from '../../src/sidecar/certs.js';
import { expectedTotals, faultPlan, latencyKept, parseDuration, rssMiB, runAccounting, runHostile, runSecurity, runSpoofFlood, scrape, startMesh, sum, HTTP_FAMILIES } from './harness.js';
import type { Mesh } from './harness.js';

const HEADER_TIMEOUT_MS = 1000;
let mesh: Mesh;
beforeAll(async () => {
  mesh = await startMesh({ limits: { headersTimeoutMs: HEADER_TIMEOUT_MS } });
});
afterAll(async () => {
  await mesh.close();
});

describe('reliability: exact accounting under faults', () => {
  it('counts 400 requests with 5% faults exactly once per reporter, with the code and flags Envoy sets', async () => {
    const plan = faultPlan(400, 0.05);
    expect(plan.filter((f) => f !== 'none')).toHaveLength(20);
    const r = await runAccounting(mesh, plan);
    expect(sum(r.source)).toBe(400);
    expect(sum(r.destination)).toBe(400);
    expect(Object.fromEntries(r.source)).toEqual(Object.fromEntries(expectedTotals(plan, 'source')));
    expect(Object.fromEntries(r.destination)).toEqual(Object.fromEntries(expectedTotals(plan, 'destination')));
  });
});

describe('reliability: hostile input', () => {
  it('survives malformed MX, random TCP MX bytes, smuggling forms and slowloris; legitimate traffic keeps its identity', async () => {
    const rssBefore = rssMiB();
    const pageBefore = (await scrape(mesh.server)).length;
    const r = await runHostile(mesh, { slowloris: 100, headerTimeoutMs: HEADER_TIMEOUT_MS, rounds: 3 });
    expect(r.alive).toBe(true);
    expect(r.smuggled).toBe(0);
    expect(r.slowlorisOpen).toBe(0);
    expect(r.legit).toBeGreaterThan(0);
    expect(r.legitOk).toBe(r.legit);
    // And its latency (latencyKept: no wait for a slow client's header timeout, the median near the one before).
    expect(latencyKept(r, HEADER_TIMEOUT_MS), `worst ${r.worstLegitMs} ms, median ${r.medianLegitMs} ms, before ${r.baselineLegitMs} ms`).toBe(true);
    // Bounded: the attack grows neither the process nor the page by more than a small constant
    // (the forged peers are a handful of series; the page holds well under 1 MiB here).
    expect(rssMiB() - rssBefore).toBeLessThan(64);
    expect((await scrape(mesh.server)).length - pageBefore).toBeLessThan(1024 * 1024);
  });
});

describe('reliability: a flood of spoofed plain-text peers', () => {
  // A small page budget so the flood fills it in seconds; `npm run soak` runs it at the 64 MiB default.
  const BUDGET = 4 * 1024 * 1024;

  it('keeps :15090 under its budget, the known peer exact, every request counted, and counts each refused label set', async () => {
    const flooded = await startMesh({ limits: { headersTimeoutMs: HEADER_TIMEOUT_MS }, stats: { maxExpositionBytes: BUDGET } });
    try {
      const PEERS = 300;
      const r = await runSpoofFlood(flooded, { peers: PEERS, nameLength: 1000, concurrency: 8 });
      expect(r.budgetBytes).toBe(BUDGET);
      expect(r.spoofedOk).toBe(PEERS);
      expect(r.lost).toBe(0);
      expect(r.maxPageBytes).toBeLessThanOrEqual(BUDGET);
      // Plain-text claims take at most their share (a quarter of the page by default).
      expect(r.plainTextLimitBytes).toBe(BUDGET / 4);
      expect(r.plainTextUsedBytes).toBeLessThanOrEqual(r.plainTextLimitBytes);
      // In each of the four HTTP families a spoofed label set either got a series or was refused, counted once,
      // in the plain-text share.
      expect(r.spoofedSeriesKept).toBeLessThan(PEERS);
      expect(r.refusedPlainText).toBe(PEERS * HTTP_FAMILIES.length - r.spoofedSeriesKept);
      expect(r.refusedExposition).toBe(0);
      expect(r.legit).toBeGreaterThan(0);
      expect(r.legitOk).toBe(r.legit);
      expect(r.legitSeriesExact).toBe(true);
      console.log(
        `spoof flood: ${PEERS} peers, page max ${(r.maxPageBytes / 2 ** 20).toFixed(2)} MiB of ${(BUDGET / 2 ** 20).toFixed(0)} MiB, plain text ${(r.plainTextUsedBytes / 2 ** 20).toFixed(2)} of ${(r.plainTextLimitBytes / 2 ** 20).toFixed(0)} MiB, ` +
          `${r.spoofedSeriesKept} spoofed label sets kept, ${r.refusedPlainText} refused, legit ${r.legitOk}/${r.legit} (worst ${r.worstLegitMs.toFixed(0)} ms), lost ${r.lost}, rss ${r.rssBeforeMiB.toFixed(0)} → ${r.rssAfterMiB.toFixed(0)} MiB, heap after GC ${r.heapBeforeMiB.toFixed(1)} → ${r.heapAfterMiB.toFixed(1)} MiB`,
      );
      // What the flood leaves behind is the heap after a full GC: the kept series (under the 4 MiB page budget) and
      // the peer caches, measured +10 to +13 MiB over three rounds (flat from the first: no leak). RSS grew +38 to
      // +62 MiB in the same runs because V8 and malloc keep freed pages; it is bounded, not the retained figure.
      expect(r.heapAfterMiB - r.heapBeforeMiB).toBeLessThan(24);
      expect(r.rssAfterMiB - r.rssBeforeMiB).toBeLessThan(128);
    } finally {
      await flooded.close();
    }
  }, 60_000);
});

describe('reliability: a plain-text flood against a PERMISSIVE sidecar whose real peer speaks mutual TLS', () => {
  const BUDGET = 4 * 1024 * 1024;
  const PP = 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage';
  let dir: string;
  let reviews: MintedWorkload;
  let productpage: MintedWorkload;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'meshtel-flood-mtls-'));
    [reviews, productpage] = mintDefaultWorkloads(dir, 'bookinfo-reviews', 'bookinfo-productpage') as [MintedWorkload, MintedWorkload];
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the mutual TLS peer on its own principal and series, every request counted, the page under budget', async () => {
    // The flood is plain text (PERMISSIVE admits it, as a mesh migrating to mTLS does); the real productpage
    // calls through its sidecar over mutual TLS. Its series must keep its certificate's principal and policy.
    const flooded = await startMesh(
      { limits: { headersTimeoutMs: HEADER_TIMEOUT_MS }, stats: { maxExpositionBytes: BUDGET } },
      { server: { tls: reviews, mtlsMode: 'PERMISSIVE' }, client: { tls: productpage } },
    );
    try {
      const PEERS = 200;
      const r = await runSpoofFlood(flooded, {
        peers: PEERS,
        nameLength: 1000,
        concurrency: 8,
        legitLabels: [`source_principal="${PP}"`, 'connection_security_policy="mutual_tls"'],
      });
      expect(r.spoofedOk).toBe(PEERS);
      expect(r.lost).toBe(0);
      expect(r.maxPageBytes).toBeLessThanOrEqual(BUDGET);
      expect(r.legit).toBeGreaterThan(0);
      expect(r.legitOk).toBe(r.legit);
      // Every legitimate 200 is on the series with the certificate's principal and mutual_tls (none went to a
      // plain-text series or to the overflow series).
      expect(r.legitSeriesExact).toBe(true);
      // The flood's label sets are plain-text claims: refused or kept within the plain-text share, never the mTLS peer's.
      expect(r.plainTextUsedBytes).toBeLessThanOrEqual(r.plainTextLimitBytes);
      expect(r.refusedPlainText).toBe(PEERS * HTTP_FAMILIES.length - r.spoofedSeriesKept);
      const page = await scrape(flooded.server);
      const forgedAsMtls = page.split('\n').filter((l) => l.includes('source_workload="spoof') && l.includes('connection_security_policy="mutual_tls"'));
      expect(forgedAsMtls).toEqual([]);
    } finally {
      await flooded.close();
    }
  }, 60_000);
});

describe('reliability: security defaults', () => {
  it('binds outbound and admin to loopback, never proxies to admin, and sends no MX outside the mesh in IN_MESH', async () => {
    const r = await runSecurity();
    expect(r.outboundBind).toBe('127.0.0.1');
    expect(r.adminReachableOn).toEqual([]);
    expect(r.outboundReachableOn).toEqual([]);
    // :15090 is for Prometheus, reachable on every address (as Istio's).
    expect(r.inboundReachableOn).toEqual(r.externalAddresses);
    expect(r.adminThroughProxy).toEqual([502, 502, 502, 502, 502]);
    expect(r.aliveAfterQuit).toBe(true);
    expect(r.mxLeakedOutside).toBe(0);
  });
});

describe('npm run soak -- --duration', () => {
  it.each([
    ['30s', 30_000],
    ['10m', 600_000],
    ['2h', 7_200_000],
    ['1500ms', 1500],
    ['45', 45_000],
  ])('reads %s as %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it('refuses what is not a duration', () => expect(() => parseDuration('ten minutes')).toThrow(/--duration/));
});
