/**
 * `npm run bench [filter]`: runs every `bench/*.bench.ts` (or those whose name contains `filter`) one after
 * another in its own process, so one benchmark's heap and JIT state cannot skew the next.
 * Each benchmark prints its own figures and the ratios against a baseline measured in the same run.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2] ?? '';
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts') && f.includes(filter))
  .sort();

let failed = 0;
for (const file of files) {
  console.log(`\n=== ${file} ===`);
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(dir, file)], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed += 1;
    console.error(`${file} exited with ${r.status ?? r.signal}`);
  }
}
if (files.length === 0) console.log(`no benchmarks match ${JSON.stringify(filter)}`);
process.exit(failed === 0 ? 0 : 1);
