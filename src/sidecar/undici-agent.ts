/**
 * undici's Agent and header parser, required from the two files of the package that define them rather than from
 * its index. The index loads all of undici (fetch, WebSocket, EventSource, the cache and mock layers, ~110 modules)
 * and costs a sidecar ~14 MiB of RSS; the Agent with its pool, HTTP/1.1 client and connector is ~6 MiB
 * (bench/rss.bench.ts, issue 16). The upstream pool uses nothing else. These are the very modules the index
 * re-exports (test/sidecar/undici-agent.test.ts checks the identity), so behaviour and types are the package's.
 */
import { createRequire } from 'node:module';
import type { Agent, util } from 'undici';

const requireUndici = createRequire(import.meta.url);

/** undici's `Agent` (`undici/lib/dispatcher/agent.js`, what `import { Agent } from 'undici'` is). */
export const UndiciAgent = requireUndici('undici/lib/dispatcher/agent.js') as typeof Agent;

/** undici's `util.parseHeaders` (`undici/lib/core/util.js`). */
export const parseHeaders = (requireUndici('undici/lib/core/util.js') as typeof util).parseHeaders;
