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
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .sort();

// The settings the benchmarks read: this list is their documentation (README points here), and
// test/bench/run.test.ts fails when a bench reads a BENCH_* variable that is not listed.
const SETTINGS: readonly (readonly [string, string])[] = [
  ['BENCH_DURATION_S', 'seconds of load per configuration and round, sidecar and proxyless benches (default 5)'],
  ['BENCH_ROUNDS', 'interleaved rounds per configuration, sidecar and proxyless benches; medians are printed (default 5)'],
  ['BENCH_CONFIGS', 'comma-separated sidecar configurations: on, off, pair, pair-off, churn (2,000 MX peers and a tag override), fastify, node-http, undici (default: all)'],
  ['BENCH_SKIP_LATENCY', '1 skips the fixed-rate latency part of the sidecar bench'],
  ['BENCH_RSS_REQUESTS', 'requests of the rss bench\'s loaded figure, over 200 connections from 200 MX peers (default 100000)'],
  ['BENCH_SKIP_CONCURRENCY', '1 skips the --concurrency 1 vs 2 throughput part of the sidecar bench'],
  ['BENCH_PIN', '0 turns off CPU pinning of the sidecar and proxyless benches (default: the process under test on CPU 1, autocannon and the app on CPU 0, when taskset and 2 cores are there)'],
  ['BENCH_SECTIONS', 'comma-separated section numbers of the stats bench (e.g. 4; 2 and 3 run together) or the native-histograms bench (e.g. 1) to run (default: all)'],
];

const arg = process.argv[2] ?? '';
if (arg === '--help' || arg === '-h') {
  console.log('usage: npm run bench [-- FILTER]   run every bench/*.bench.ts whose name contains FILTER\n');
  console.log('benchmarks:');
  for (const f of all) console.log(`  ${f.replace(/\.bench\.ts$/, '')}`);
  console.log('\nsettings (environment):');
  for (const [name, what] of SETTINGS) console.log(`  ${name.padEnd(20)} ${what}`);
  process.exit(0);
}
const filter = arg;
const files = all.filter((f) => f.includes(filter));

let failed = 0;
for (const file of files) {
  console.log(`\n=== ${file} ===`);
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(dir, file)], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed += 1;
    console.error(`${file} exited with ${r.status ?? r.signal}`);
  }
}
if (files.length === 0) console.log(`no benchmarks match ${JSON.stringify(filter)} (npm run bench -- --help lists them)`);
process.exit(failed === 0 ? 0 : 1);
