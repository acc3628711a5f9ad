/**
 * A passthrough destination named by DNS is checked on the address it resolves to, and the request goes
 * to that checked address (no second resolution an attacker's DNS could answer differently).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createDestinationGuard } from '../../src/sidecar/destination-guard.js';
import type { LookupFn } from '../../src/sidecar/destination-guard.js';
import { eventually, httpApp, send, serveHandler } from './helpers.js';
import type { Cleanups } from './helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A resolver with fixed answers, counting its calls. */
function fakeDns(answers: Record<string, string>): LookupFn & { calls: number } {
  const fn = ((host: string, cb: (err: NodeJS.ErrnoException | null, address: string) => void) => {
    fn.calls++;
    const a = answers[host];
    setImmediate(() => (a === undefined ? cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }), '') : cb(null, a)));
  }) as LookupFn & { calls: number };
  fn.calls = 0;
  return fn;
}

async function counter(telemetry: { registry: { metrics(): Promise<string> } }, name: string, includes: string[]): Promise<number> {
  const body = await telemetry.registry.metrics();
  let n = 0;
  for (const l of body.split('\n')) if (l.startsWith(`${name}{`) && includes.every((i) => l.includes(i))) n += Number(l.slice(l.lastIndexOf(' ') + 1));
  return n;
}

describe('Passthrough to a DNS name', () => {
  it('refuses a name that resolves to loopback like the loopback IP (502 BlackHoleCluster, counted)', async () => {
    const app = await httpApp();
    cleanups.push(app.close);
    const dns = fakeDns({ 'rebind.example': '127.0.0.1' });
    const guard = createDestinationGuard([], [], false, dns);
    const served = await serveHandler(cleanups, { direction: 'outbound', destinationGuard: guard });
    const res = await send(served.port, { host: `rebind.example:${app.port}` });
    expect(res.status).toBe(502);
    expect(app.seen).toHaveLength(0);
    await eventually(async () => {
      expect(await counter(served.telemetry, 'istio_requests_total', ['destination_service_name="BlackHoleCluster"', 'response_code="502"'])).toBe(1);
    });
    expect(await counter(served.telemetry, 'meshtel_proxy_refused_total', ['reason="loopback_destination"'])).toBe(1);
  });

  it('connects to the address it checked, resolves once per TTL, and refuses the sidecar\'s own port by name', async () => {
    const app = await httpApp();
    cleanups.push(app.close);
    const dns = fakeDns({ 'app.example': '127.0.0.1' });
    const ownPort = 15000;
    const guard = createDestinationGuard([ownPort], [], true, dns);
    const served = await serveHandler(cleanups, { direction: 'outbound', destinationGuard: guard });
    for (let i = 0; i < 3; i++) expect((await send(served.port, { host: `app.example:${app.port}` })).status).toBe(200);
    // The app saw the name the client used, the connection went to the checked address.
    expect(app.seen.map((r) => r.headers.host)).toEqual(Array(3).fill(`app.example:${app.port}`));
    expect(dns.calls).toBe(1);
    expect((await send(served.port, { host: `app.example:${ownPort}` })).status).toBe(502);
    expect(await counter(served.telemetry, 'meshtel_proxy_refused_total', ['reason="own_port"'])).toBe(1);
    // A name that does not resolve fails as a connection failure, as before.
    const nx = await send(served.port, { host: 'nx.example:80' });
    expect(nx.status).toBe(503);
  });
});
