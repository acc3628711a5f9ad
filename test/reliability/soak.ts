/**
 * The long form of the reliability suite: `npm run soak -- --duration 10m` (also `30s`, `90s`, `2h`).
 * Repeats the accounting, hostile and spoofed-peer flood probes (the flood at the default 64 MiB page budget)
 * against one pair of real sidecars for the duration, then
 * prints RSS slope, scrape size, requests lost (must be 0) and the worst case per probe; exits 1 when a
 * request was lost or mis-recorded, a probe failed, or memory kept growing.
 */
import { parseArgs } from 'node:util';
import { expectedTotals, faultPlan, latencyKept, parseDuration, rssMiB, runAccounting, runHostile, runSecurity, runSpoofFlood, scrape, startMesh, sum } from './harness.js';

/** Least-squares slope of y over x. */
function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return 0;
  let sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const d = n * sxx - sx * sx;
  return d === 0 ? 0 : (n * sxy - sx * sy) / d;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { duration: { type: 'string', default: '60s' }, requests: { type: 'string', default: '400' }, 'spoof-peers': { type: 'string', default: '2000' } }, allowPositionals: true });
  const durationMs = parseDuration(values.duration);
  const perRound = Number(values.requests);
  const spoofPerRound = Number(values['spoof-peers']);
  const headerTimeoutMs = 1000;
  const mesh = await startMesh({ limits: { headersTimeoutMs: headerTimeoutMs } });
  const started = Date.now();
  const rss: [number, number][] = [];
  let sent = 0;
  let lost = 0;
  let misrecorded = 0;
  let rounds = 0;
  let worstAccountingMs = 0;
  let worstLegitMs = 0;
  let worstMedianLegitMs = 0;
  let worstBaselineLegitMs = 0;
  let hostileSent = 0;
  let hostileFailures = 0;
  let maxRss = 0;
  let maxScrape = 0;
  let spoofSent = 0;
  let spoofLost = 0;
  let spoofFailures = 0;
  let spoofMaxPage = 0;
  let spoofBudget = 0;
  let spoofRefused = 0;
  let spoofLegit = 0;
  let spoofLegitOk = 0;
  let spoofWorstLegitMs = 0;
  try {
    while (Date.now() - started < durationMs) {
      rounds++;
      const plan = faultPlan(perRound, 0.05);
      const a = await runAccounting(mesh, plan);
      sent += plan.length;
      lost += Math.max(0, plan.length - sum(a.source)) + Math.max(0, plan.length - sum(a.destination));
      for (const reporter of ['source', 'destination'] as const) {
        const want = expectedTotals(plan, reporter);
        const got = reporter === 'source' ? a.source : a.destination;
        for (const k of new Set([...want.keys(), ...got.keys()])) misrecorded += Math.abs((want.get(k) ?? 0) - (got.get(k) ?? 0));
      }
      worstAccountingMs = Math.max(worstAccountingMs, a.worstMs);
      const h = await runHostile(mesh, { slowloris: 100, headerTimeoutMs, rounds: 2 });
      hostileSent += h.sent;
      if (!h.alive || h.smuggled > 0 || h.slowlorisOpen > 0 || h.legitOk !== h.legit || !latencyKept(h, headerTimeoutMs)) hostileFailures++;
      worstLegitMs = Math.max(worstLegitMs, h.worstLegitMs);
      worstMedianLegitMs = Math.max(worstMedianLegitMs, h.medianLegitMs);
      worstBaselineLegitMs = Math.max(worstBaselineLegitMs, h.baselineLegitMs);
      const f = await runSpoofFlood(mesh, { peers: spoofPerRound, nameLength: 1000, concurrency: 16, firstPeer: (rounds - 1) * spoofPerRound });
      spoofSent += f.spoofed;
      spoofLost += f.lost;
      spoofMaxPage = Math.max(spoofMaxPage, f.maxPageBytes);
      spoofBudget = f.budgetBytes;
      spoofRefused += f.refusedPlainText + f.refusedExposition;
      spoofLegit += f.legit;
      spoofLegitOk += f.legitOk;
      spoofWorstLegitMs = Math.max(spoofWorstLegitMs, f.worstLegitMs);
      if (f.lost > 0 || f.maxPageBytes > f.budgetBytes || f.plainTextUsedBytes > f.plainTextLimitBytes || f.legitOk !== f.legit || !f.legitSeriesExact) spoofFailures++;
      const now = rssMiB();
      maxRss = Math.max(maxRss, now);
      rss.push([(Date.now() - started) / 60_000, now]);
      maxScrape = Math.max(maxScrape, (await scrape(mesh.server)).length, (await scrape(mesh.client)).length);
      process.stdout.write(`round ${rounds}: ${sent} requests, rss ${now.toFixed(1)} MiB\n`);
    }
  } finally {
    await mesh.close();
  }
  const sec = await runSecurity();
  const securityOk = sec.adminReachableOn.length === 0 && sec.outboundReachableOn.length === 0 && sec.adminThroughProxy.every((c) => c === 502) && sec.aliveAfterQuit && sec.mxLeakedOutside === 0;
  // Growth after warm-up: the first quarter of the samples is JIT and pool warm-up.
  const steady = rss.slice(Math.floor(rss.length / 4));
  const rssSlope = slope(steady);
  const elapsedMin = (Date.now() - started) / 60_000;
  const lines = [
    `soak: ${elapsedMin.toFixed(1)} min, ${rounds} rounds`,
    `accounting: ${sent} requests (5% faults: resets before/during body, client aborts, hang + ${1500} ms route timeout, app down), lost ${lost}, mis-recorded ${misrecorded}, worst request ${worstAccountingMs.toFixed(0)} ms`,
    `hostile: ${hostileSent} hostile inputs (malformed MX, random TCP MX bytes, 5 smuggling forms, 100 slowloris per round), failed rounds ${hostileFailures}, worst legitimate request under attack ${worstLegitMs.toFixed(0)} ms, highest median under attack ${worstMedianLegitMs.toFixed(1)} ms (before the attack at most ${worstBaselineLegitMs.toFixed(1)} ms)`,
    `security: outbound bind ${sec.outboundBind}, admin reachable on [${sec.adminReachableOn.join(', ')}] of [${sec.externalAddresses.join(', ')}], admin through proxy ${sec.adminThroughProxy.join('/')}, MX sent outside the mesh ${sec.mxLeakedOutside}`,
    `spoof flood: ${spoofSent} spoofed plain-text peers (names 1000 characters, cut to 600), largest :15090 page under attack ${(spoofMaxPage / 2 ** 20).toFixed(1)} MiB of a ${(spoofBudget / 2 ** 20).toFixed(0)} MiB budget, ${spoofRefused} label sets refused (meshtel_series_budget_refused_total), legitimate ${spoofLegitOk}/${spoofLegit} kept 200 and identity (worst ${spoofWorstLegitMs.toFixed(0)} ms), lost ${spoofLost}, failed rounds ${spoofFailures}`,
    `rss: max ${maxRss.toFixed(1)} MiB, slope ${rssSlope.toFixed(2)} MiB/min (after warm-up)`,
    `scrape: largest :15090 page ${(maxScrape / 1024).toFixed(1)} KiB`,
    `requests lost: ${lost + spoofLost}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  // A steady slope over 2 MiB/min for 10 minutes would be a leak of 20 MiB; short runs only report it.
  const leaking = elapsedMin >= 5 && rssSlope > 2;
  return lost === 0 && spoofLost === 0 && misrecorded === 0 && hostileFailures === 0 && spoofFailures === 0 && securityOk && !leaking ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
