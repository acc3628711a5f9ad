import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const benchDir = path.join(root, 'bench');

describe('npm run bench -- --help', () => {
  const help = execFileSync(process.execPath, ['--import', 'tsx', path.join(benchDir, 'run.ts'), '--help'], {
    cwd: root,
    encoding: 'utf8',
  });

  it('lists every benchmark by name and runs none', () => {
    const names = readdirSync(benchDir)
      .filter((f) => f.endsWith('.bench.ts'))
      .map((f) => f.replace(/\.bench\.ts$/, ''));
    expect(names.length).toBeGreaterThan(0);
    for (const n of names) expect(help).toMatch(new RegExp(`^  ${n}$`, 'm'));
    expect(help).not.toContain('===');
  });

  it('documents every BENCH_* variable a benchmark reads', () => {
    const read = new Set<string>();
    for (const f of readdirSync(benchDir).filter((x) => x.endsWith('.ts'))) {
      for (const m of readFileSync(path.join(benchDir, f), 'utf8').matchAll(/process\.env\.(BENCH_[A-Z_]+)/g)) read.add(m[1]!);
    }
    expect(read.size).toBeGreaterThan(0);
    for (const v of read) expect(help).toMatch(new RegExp(`^  ${v} +\\S`, 'm'));
  });
});
