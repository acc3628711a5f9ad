/**
 * `node --import tsx --import ./module-probe.mjs -e "await import(X)"`: records every module URL the import
 * resolves (a resolve hook registered after tsx's sees the final URLs; CommonJS modules from the require cache) and, at exit, prints one JSON line
 * `{"modules":[...],"rssBytes":N,"heapUsedBytes":N}` to stdout. Used by test/package/module-load.test.ts (what a
 * subpath import loads) and bench/rss.bench.ts (what each component costs in memory).
 */
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import process from 'node:process';
import { setImmediate } from 'node:timers';

const { port1, port2 } = new MessageChannel();
const seen = new Set();
port1.on('message', (url) => seen.add(url));
port1.unref();
register(
  'data:text/javascript,' +
    encodeURIComponent(`
let port;
export function initialize(data) { port = data.port; }
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  port.postMessage(r.url);
  return r;
}`),
  { data: { port: port2 }, transferList: [port2] },
);
process.on('beforeExit', () => {
  // Let the last messages from the hooks thread arrive.
  setImmediate(() => {
    if (globalThis.gc) globalThis.gc();
    // CommonJS packages that ESM imported, and what they required, are in the CommonJS cache, not the hook's view.
    for (const file of Object.keys(createRequire(import.meta.url).cache)) seen.add(pathToFileURL(file).href);
    const m = process.memoryUsage();
    process.stdout.write(`${JSON.stringify({ modules: [...seen], rssBytes: m.rss, heapUsedBytes: m.heapUsed })}\n`);
    process.exit(0);
  });
});
