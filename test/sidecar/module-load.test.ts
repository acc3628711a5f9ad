/**
 * Load only what is used (issue 16): a default sidecar, started in a fresh process and then closed, has loaded no
 * fastify (the agent ports are node:http), no more of undici than its Agent, no zod or yaml (no mesh, metadata or Telemetry file to read), no OpenTelemetry SDK
 * or exporter, no gRPC, no Jaeger, and no CLI or console; `meshtel sidecar` through the CLI neither (commander aside: yaml is
 * required by the commands that parse YAML, on first use). Each is what a
 * config that uses it loads (the last cases), so the probe is known to see them.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const probe = path.join(root, 'bench/support/module-probe.mjs');
const src = (file: string): string => JSON.stringify(pathToFileURL(path.join(root, file)).href);

const NEVER_BY_DEFAULT = [
  'fastify',
  'undici index',
  'zod',
  'yaml',
  'commander',
  '@grpc/grpc-js',
  '@opentelemetry/sdk-node',
  '@opentelemetry/sdk-trace-base',
  '@opentelemetry/sdk-metrics',
  '@opentelemetry/exporter-trace-otlp-proto',
  '@opentelemetry/exporter-metrics-otlp-proto',
  '@opentelemetry/exporter-jaeger',
  '@opentelemetry/resources',
];

/** Run `args` with the module probe; resolves with the packages loaded by the time the process went idle. */
function packagesLoaded(args: readonly string[], env: Record<string, string> = {}, stopWhen?: RegExp): Promise<Set<string>> {
  return new Promise((resolve, reject) => {
    const cp = spawn(process.execPath, ['--import', 'tsx', '--import', probe, ...args], { cwd: root, env: { ...process.env, MESHTEL_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    cp.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    cp.stderr.setEncoding('utf8').on('data', (c: string) => {
      err += c;
      if (stopWhen?.test(err)) {
        stopWhen = undefined;
        // The CLI installs its SIGTERM handler just after the ready line.
        setTimeout(() => cp.kill('SIGTERM'), 500);
      }
    });
    cp.once('error', reject);
    cp.once('exit', () => {
      const last = out.trim().split('\n').pop() ?? '';
      if (!last.startsWith('{')) return reject(new Error(`no probe output: ${err}`));
      const packages = new Set<string>();
      for (const u of (JSON.parse(last) as { modules: string[] }).modules) {
        const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u);
        if (m) packages.add(m[1]!);
        // undici's index (fetch, WebSocket, cache, mock...) as opposed to the Agent the upstream pool requires.
        if (/node_modules\/undici\/(index\.js|lib\/web\/)/.test(u)) packages.add('undici index');
        const s = /\/src\/([^/]+)\/[^/]+\.ts$/.exec(u);
        if (s) packages.add(`src/${s[1]}`);
      }
      resolve(packages);
    });
  });
}

const startAndClose = (options: string): string[] => [
  '--input-type=module',
  '-e',
  `const { startSidecar } = await import(${src('src/sidecar/sidecar.ts')});
   const sc = await startSidecar({ env: {}, bindAddress: '127.0.0.1', ports: { inbound: 0, outbound: 0, prometheus: 0, status: 0, health: 0, admin: 0 }, app: { port: 9 }, ${options} });
   await fetch('http://127.0.0.1:' + sc.ports.prometheus + '/stats/prometheus').then((r) => r.text());
   await sc.close();`,
];

describe('what a sidecar loads', () => {
  it('a default sidecar loads none of fastify, zod, yaml, the OTel SDK, exporters, gRPC or Jaeger', async () => {
    const loaded = await packagesLoaded(startAndClose(''));
    for (const p of NEVER_BY_DEFAULT) expect(loaded.has(p), `loaded ${p}`).toBe(false);
    for (const s of ['src/cli', 'src/console', 'src/demo']) expect(loaded.has(s), `loaded ${s}`).toBe(false);
    // The probe sees what was loaded: the proxy's own dependencies.
    expect(loaded.has('undici')).toBe(true);
    expect(loaded.has('prom-client')).toBe(true);
  }, 60_000);

  it('`meshtel sidecar` (the CLI, tracing off) loads none of them either', async () => {
    const loaded = await packagesLoaded(
      [
        '--input-type=module',
        '-e',
        // runCli as main.ts runs it, without main.ts's exit timer (the probe prints when the process goes idle).
        `const { runCli } = await import(${src('src/cli/program.ts')});
         process.exitCode = await runCli(${JSON.stringify(['node', 'meshtel', 'sidecar', '--app-port', '9', '--bind', '127.0.0.1', ...['inbound', 'outbound', 'prometheus', 'status', 'health', 'admin'].flatMap((p) => [`--${p}-port`, '0'])])});`,
      ],
      { POD_NAME: 'reviews-v1-abc', POD_NAMESPACE: 'default' },
      /"sidecar ready"/,
    );
    for (const p of NEVER_BY_DEFAULT.filter((x) => x !== 'commander')) expect(loaded.has(p), `loaded ${p}`).toBe(false);
    for (const s of ['src/console', 'src/demo']) expect(loaded.has(s), `loaded ${s}`).toBe(false);
    expect(loaded.has('src/sidecar')).toBe(true);
  }, 60_000);

  it('a mesh file brings zod and yaml in (they are what reads it)', async () => {
    const file = path.join(tmpdir(), `meshtel-module-load-${process.pid}.yaml`);
    writeFileSync(file, 'services:\n  - name: reviews\n    ports: [{ name: http, protocol: http, port: 9080 }]\n');
    const loaded = await packagesLoaded(startAndClose(`meshFile: ${JSON.stringify(file)}`));
    expect(loaded.has('zod')).toBe(true);
    expect(loaded.has('yaml')).toBe(true);
    expect(loaded.has('fastify')).toBe(false);
  }, 60_000);
});
