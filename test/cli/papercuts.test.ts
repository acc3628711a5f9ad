/**
 * CLI papercuts from issue 13: option clashes with the program's --version, and decode's guess of baggage.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decodeValue } from '../../src/cli/decode.js';
import { decodeBaggage } from '../../src/metadata/baggage.js';
import { runCli } from '../../src/cli/program.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** Run the CLI in-process, capturing what it writes to stdout. */
async function run(args: string[]): Promise<{ code: number; stdout: string }> {
  let stdout = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  const code = await runCli(['node', 'meshtel', ...args]);
  vi.restoreAllMocks();
  return { code, stdout };
}

describe('meshtel --version and encode --version', () => {
  it('prints the package version for the top-level -V/--version only', async () => {
    const { version } = (await import('../../package.json', { with: { type: 'json' } })).default as { version: string };
    expect(await run(['--version'])).toEqual({ code: 0, stdout: `${version}\n` });
    expect(await run(['-V'])).toEqual({ code: 0, stdout: `${version}\n` });
  });

  it('gives encode --version to the version label (the first example of encode --help)', async () => {
    const r = await run(['encode', '--workload', 'reviews-v1', '--namespace', 'bookinfo', '--app', 'reviews', '--version', 'v1']);
    expect(r.code).toBe(0);
    const report = decodeValue(r.stdout.trim());
    expect(report.labels).toMatchObject({ workload: 'reviews-v1', version: 'v1', app: 'reviews' });
  });
});

describe('decode of a value that is no baggage', () => {
  it('says it was read as baggage and suggests --as mx when the kind was guessed', () => {
    expect(decodeBaggage('garbage!!!').ok).toBe(false);
    expect(() => decodeValue('garbage!!!')).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_DECODE', message: expect.stringContaining('try --as mx') }));
  });

  it('does not suggest another kind when baggage was asked for', () => {
    expect(() => decodeValue('garbage!!!', 'baggage')).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_DECODE', message: expect.not.stringContaining('--as mx') }));
  });
});

describe('inject leaves skipped workloads as they were', () => {
  it('adds no spec.template to a Deployment without one, and no metadata to a template with no containers', async () => {
    const { injectManifests } = await import('../../src/cli/inject.js');
    const { parseAllDocuments } = await import('yaml');
    const input = [
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: empty}\nspec: {replicas: 1}\n',
      'apiVersion: v1\nkind: Pod\nmetadata: {name: bare}\nspec: {}\n',
    ].join('---\n');
    const r = injectManifests(input);
    expect(r.report.injected).toEqual([]);
    expect(r.report.skipped).toEqual(['Deployment/empty: no pod template (spec.template)', 'Pod/bare: no containers']);
    expect(parseAllDocuments(r.yaml).map((d) => d.toJS() as unknown)).toEqual(parseAllDocuments(input).map((d) => d.toJS() as unknown));
  });
});
