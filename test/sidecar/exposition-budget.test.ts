/**
 * Issue 11.1 through a real sidecar: a flood of spoofed plain-text peers with ~1,000-character names
 * on the inbound listener keeps `:15090` under its documented budget, while the real productpage
 * sidecar's traffic and the local (no-MX) series keep their identity and exact counts.
 */
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { spoofedMx } from '../reliability/harness.js';
import { DEFAULT_MAX_EXPOSITION_BYTES, DEFAULT_MAX_PLAINTEXT_EXPOSITION_BYTES } from '../../src/stats/series-budget.js';
import { bookinfoLabels, bookinfoPair, get, send } from './helpers.js';
import type { Cleanups } from './helpers.js';
import { samples } from '../stats/fixtures.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});


describe('Sidecar inbound under a flood of spoofed plain-text peers', () => {
  it('keeps the scrape under budget and the real peers exact', async () => {
    const { client, server } = await bookinfoPair(cleanups);
    const legit = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) expect((await send(client.ports.outbound, { host: 'reviews:9080' })).status).toBe(200);
    };
    await legit(10);

    const FLOOD = 1500;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < FLOOD) {
        const i = next++;
        const mx = spoofedMx(i, 1000);
        expect(mx.length).toBeLessThan(8192);
        const r = await send(server.ports.inbound, { agent, headers: { 'x-envoy-peer-metadata-id': `sidecar~10.0.0.9~spoof${i}.default~default.svc.cluster.local`, 'x-envoy-peer-metadata': mx } });
        expect(r.status).toBe(200);
      }
    };
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 16 }, worker));
    agent.destroy();
    const floodMs = Date.now() - t0;

    await legit(10);
    // The local series (no MX: an all-unknown source) is a new label set after the flood: still admitted.
    for (let i = 0; i < 3; i++) expect((await send(server.ports.inbound, {})).status).toBe(200);

    const { body } = await get(`http://127.0.0.1:${server.ports.prometheus}/stats/prometheus`);
    const bytes = Buffer.byteLength(body);
    expect(bytes).toBeLessThan(DEFAULT_MAX_EXPOSITION_BYTES);
    const v = (name: string, budget: string): number => Number(samples(body, name).find((x) => x.labels.budget === budget)?.value);
    expect(v('meshtel_series_budget_used_bytes', 'plain_text')).toBeLessThanOrEqual(DEFAULT_MAX_PLAINTEXT_EXPOSITION_BYTES);
    expect(v('meshtel_series_budget_refused_total', 'plain_text')).toBeGreaterThan(0);
    expect(v('meshtel_series_budget_refused_total', 'exposition')).toBe(0);
    expect(Number(samples(body, 'meshtel_label_value_truncated_total').find((x) => x.labels.label === 'source_workload')?.value)).toBe(FLOOD);

    const requests = samples(body, 'istio_requests_total');
    const real = requests.filter((x) => x.line.startsWith(`istio_requests_total${bookinfoLabels('destination')} `));
    expect(real.map((x) => x.value)).toEqual(['20']);
    const local = requests.filter((x) => x.labels.source_workload === 'unknown');
    expect(local.map((x) => x.value)).toEqual(['3']);
    // Every spoofed request is counted once: in its own (cut) series or in the overflow series.
    const spoofed = requests.filter((x) => x.labels.source_workload?.startsWith('spoof') === true);
    for (const x of spoofed) expect(x.labels.source_workload).toHaveLength(600);
    const overflow = Number(requests.find((x) => x.labels.meshtel_overflow === 'true')?.value ?? 0);
    expect(spoofed.reduce((a, x) => a + Number(x.value), 0) + overflow).toBe(FLOOD);
    console.log(`spoofed flood: ${FLOOD} requests in ${floodMs} ms, :15090 page ${(bytes / 2 ** 20).toFixed(1)} MiB, ${spoofed.length} spoofed label sets kept`);
  }, 120_000);
});
