/**
 * Load only what is used (issue 16, issue 12.4): each entry of package.json "exports" is imported in a fresh
 * process (from src/ through tsx, the same modules dist/ is built from) and the packages it loaded are checked. An
 * app that embeds meshtel must not load the sidecar, the CLI, the demo, gRPC or the OpenTelemetry SDK; a sidecar
 * without tracing must not load the SDK either.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const probe = path.join(root, 'bench/support/module-probe.mjs');

interface Loaded {
  readonly packages: Set<string>;
  readonly sources: Set<string>;
}

/** Packages (node_modules names) and meshtel source folders (`src/<stage>`) an import loads. */
function loadedBy(file: string): Loaded {
  const url = pathToFileURL(path.join(root, file)).href;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--import', probe, '--input-type=module', '-e', `await import(${JSON.stringify(url)});`], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, MESHTEL_LOG_LEVEL: 'silent' },
  });
  const { modules } = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { modules: string[] };
  const packages = new Set<string>();
  const sources = new Set<string>();
  for (const u of modules) {
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u);
    if (pkg) packages.add(pkg[1]!);
    const src = /\/src\/([^/]+)\/[^/]+\.ts$/.exec(u);
    if (src && u.startsWith(pathToFileURL(root).href)) sources.add(src[1]!);
  }
  return { packages, sources };
}

/** The source file a package export is built from (dist/x.js → src/x.ts). */
function sourceOf(subpath: string): string {
  const exports = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { exports: Record<string, { import: string } | string> }).exports;
  const entry = exports[subpath];
  if (entry === undefined || typeof entry === 'string') throw new Error(`no export ${subpath}`);
  return entry.import.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts');
}

const SDK = ['@opentelemetry/sdk-trace-base', '@opentelemetry/sdk-node', '@opentelemetry/exporter-trace-otlp-proto', '@opentelemetry/exporter-jaeger', '@opentelemetry/resources', '@grpc/grpc-js'];
const SIDECAR_AND_TOOLS = ['sidecar', 'cli', 'demo', 'console'];

describe('package exports load only what they need', () => {
  it('every export names a source file that exists, with its types beside it', () => {
    const exports = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { exports: Record<string, { import: string; types: string } | string> }).exports;
    for (const [subpath, entry] of Object.entries(exports)) {
      if (typeof entry === 'string') continue;
      expect(existsSync(path.join(root, sourceOf(subpath))), subpath).toBe(true);
      expect(entry.types, subpath).toBe(entry.import.replace(/\.js$/, '.d.ts'));
    }
  });

  it.each([
    ['.', []],
    ['./embed', []],
    ['./embed/fastify', ['undici']],
    ['./metadata', ['prom-client', 'undici', 'fastify-plugin']],
    ['./stats', ['undici', 'fastify-plugin']],
  ])('%s loads no sidecar, CLI, demo, gRPC or OpenTelemetry SDK (and none of %j)', (subpath, alsoNot) => {
    const { packages, sources } = loadedBy(sourceOf(subpath));
    for (const p of [...SDK, 'fastify', 'zod', 'commander', ...alsoNot]) expect(packages.has(p), `${subpath} loaded ${p}`).toBe(false);
    for (const s of SIDECAR_AND_TOOLS) expect(sources.has(s), `${subpath} loaded src/${s}`).toBe(false);
    // The probe sees what it should: the stage itself was loaded.
    expect(sources.size).toBeGreaterThan(0);
  });

  it('the sidecar without tracing loads no OpenTelemetry SDK, exporters or gRPC, and none of the CLI or demo', () => {
    const { packages, sources } = loadedBy(sourceOf('./sidecar'));
    for (const p of [...SDK, 'commander']) expect(packages.has(p), `sidecar loaded ${p}`).toBe(false);
    for (const s of ['cli', 'demo', 'console']) expect(sources.has(s), `sidecar loaded src/${s}`).toBe(false);
    expect(sources.has('sidecar')).toBe(true);
  });

  it('meshtel/tracing is where the SDK comes in (the probe would see it)', () => {
    const { packages } = loadedBy(sourceOf('./tracing'));
    expect(packages.has('@opentelemetry/sdk-trace-base')).toBe(true);
  });
});
