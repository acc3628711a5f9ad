/**
 * The sidecar requires undici's Agent and header parser from the package's own files, not its index (RSS, issue 16):
 * they must be the very objects the index exports, so behaviour is the package's and an undici release that moves
 * them fails here rather than in a pod.
 */
import { createRequire } from 'node:module';
import type * as Undici from 'undici';
import { describe, expect, it } from 'vitest';
import { UndiciAgent, parseHeaders } from '../../src/sidecar/undici-agent.js';

describe('undici-agent', () => {
  it("is undici's own Agent and util.parseHeaders", () => {
    const undici = createRequire(import.meta.url)('undici') as typeof Undici;
    expect(UndiciAgent).toBe(undici.Agent);
    expect(parseHeaders).toBe(undici.util.parseHeaders);
  });

  it('parses raw header pairs as the upstream pool reads them', () => {
    expect(parseHeaders([Buffer.from('Content-Type'), Buffer.from('text/plain'), Buffer.from('set-cookie'), Buffer.from('a'), Buffer.from('Set-Cookie'), Buffer.from('b')])).toEqual({
      'content-type': 'text/plain',
      'set-cookie': ['a', 'b'],
    });
  });
});
