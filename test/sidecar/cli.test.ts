import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { parseWorkloadArg, registerCertsCommand } from '../../src/cli/commands/certs.js';
import { parseInboundFlag, parseServiceListenerFlag, registerSidecarCommand, sidecarOptionsFromFlags } from '../../src/cli/commands/sidecar.js';
import { loadSidecarTls } from '../../src/sidecar/tls.js';
import { get, httpApp, send } from './helpers.js';

const dir = mkdtempSync(path.join(tmpdir(), 'meshtel-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  vi.restoreAllMocks();
});

function program(register: (p: Command) => void): Command {
  const p = new Command('meshtel').exitOverride();
  register(p);
  return p;
}

describe('meshtel certs', () => {
  it('writes a CA and one Istio-layout directory per workload', async () => {
    const out = path.join(dir, 'certs');
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    await program(registerCertsCommand).parseAsync(['node', 'meshtel', 'certs', 'default/web', 'shop/cart', '-o', out, '--trust-domain', 'example.org']);
    expect(existsSync(path.join(out, 'root-cert.pem'))).toBe(true);
    const cart = path.join(out, 'shop.cart');
    expect(loadSidecarTls({ certFile: path.join(cart, 'cert-chain.pem'), keyFile: path.join(cart, 'key.pem'), caFile: path.join(cart, 'root-cert.pem') }).localPrincipal).toBe(
      'spiffe://example.org/ns/shop/sa/cart',
    );
    expect(write.mock.calls.map((c) => String(c[0])).join('')).toContain('spiffe://example.org/ns/default/sa/web');
  });

  it('rejects a workload that is not <namespace>/<service account>', () => {
    expect(() => parseWorkloadArg('web')).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_CLI_USAGE' }));
  });
});

describe('meshtel sidecar', () => {
  it.each([
    ['0:8081/grpc', { port: 0, appPort: 8081, protocol: 'grpc' }],
    ['15007:8080', { port: 15007, appPort: 8080, protocol: 'http' }],
  ])('reads --inbound %s', (flag, expected) => {
    expect(parseInboundFlag(flag)).toEqual(expected);
  });

  it.each(['8080', '1:2/udp', 'a:b'])('rejects --inbound %s with MESHTEL_ERR_CLI_USAGE', (flag) => {
    expect(() => parseInboundFlag(flag)).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_CLI_USAGE' }));
  });

  it('reads --service-listener host:port=listen', () => {
    expect(parseServiceListenerFlag('ratings:9090=15101')).toEqual({ host: 'ratings', port: 9090, listenPort: 15101 });
    expect(() => parseServiceListenerFlag('ratings=1')).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_CLI_USAGE' }));
  });

  it('lets flags override the environment', () => {
    const o = sidecarOptionsFromFlags(
      { inbound: [], serviceListener: [], telemetry: false, appPort: '8080', mxMode: 'IN_MESH', retries: '0', routeTimeout: '2s', statusPort: '0' },
      {},
    );
    expect(o).toMatchObject({ app: { port: 8080 }, mxMode: 'IN_MESH', retries: 0, timeoutMs: 2000, telemetry: false, ports: { status: 0 } });
    expect(() => sidecarOptionsFromFlags({ inbound: [], serviceListener: [], telemetry: true, tlsCert: 'x' }, {})).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_CLI_USAGE' }));
  });

  it('runs a sidecar until /quitquitquit, logging one ready line and one stopped line', async () => {
    const app = await httpApp();
    const meta = path.join(dir, 'meta.yaml');
    writeFileSync(meta, 'name: web-1\nnamespace: default\nworkload: web\nlabels: {app: web, version: v1}\n');
    const lines: string[] = [];
    // The logger writes JSON lines to stderr; stdout stays empty.
    const stdout = vi.spyOn(process.stdout, 'write');
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    const ports = ['--inbound-port', '--outbound-port', '--prometheus-port', '--status-port', '--health-port', '--admin-port'].flatMap((f) => [f, '0']);
    const run = program(registerSidecarCommand).parseAsync([
      'node', 'meshtel', 'sidecar', '--bind', '127.0.0.1', '--app-port', String(app.port), '--metadata-file', meta, '--labels-path', path.join(dir, 'none'), '--annotations-path', path.join(dir, 'none'), '--log-level', 'info', ...ports,
    ]);
    const ready = await new Promise<{ ports: { inbound: number; admin: number; prometheus: number } }>((resolve, reject) => {
      const t = setInterval(() => {
        const line = lines.find((l) => l.includes('"msg":"sidecar ready"'));
        if (line) {
          clearInterval(t);
          resolve(JSON.parse(line) as { ports: { inbound: number; admin: number; prometheus: number } });
        }
      }, 10);
      run.catch((err: unknown) => {
        clearInterval(t);
        reject(err as Error);
      });
    });
    expect((await send(ready.ports.inbound, {})).status).toBe(200);
    expect((await get(`http://127.0.0.1:${ready.ports.prometheus}/stats/prometheus`)).body).toContain('destination_workload="web"');
    await fetch(`http://127.0.0.1:${ready.ports.admin}/quitquitquit`, { method: 'POST' });
    await run;
    await app.close();
    expect(lines.filter((l) => l.includes('ready')).length).toBe(1);
    expect(lines.filter((l) => l.includes('"msg":"sidecar stopped"')).length).toBe(1);
    expect(stdout).not.toHaveBeenCalled();
  });
});
