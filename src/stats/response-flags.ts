/**
 * `response_flags`: Envoy's short codes of the set flag bits, in flag-bit order, joined by `,`; `-` when
 * none is set (envoy `source/common/stream_info/utility.cc` `ResponseFlagUtils::toShortString`, order of
 * `CORE_RESPONSE_FLAGS` in `utility.h`).
 */
import { ResponseFlag, type ResponseFlagName } from './types.js';

/** Short codes indexed by bit position. */
const CODES: readonly ResponseFlagName[] = (Object.keys(ResponseFlag) as ResponseFlagName[]).sort(
  (a, b) => ResponseFlag[a] - ResponseFlag[b],
);

/** Every known flag bit; other bits are ignored (Envoy only prints flags it knows). */
const KNOWN_MASK = CODES.reduce((m, c) => m | ResponseFlag[c], 0);

// Most traffic uses a handful of flag combinations: cache the joined string per mask so the hot path
// does one Map lookup instead of a 29-step loop and a join. Bounded: cleared when full.
const cache = new Map<number, string>([[0, '-']]);
const MAX_CACHE = 512;

/** Render a flag bitmask as Envoy's `response_flags` value. */
export function formatResponseFlags(flags: number): string {
  const mask = flags & KNOWN_MASK;
  const hit = cache.get(mask);
  if (hit !== undefined) return hit;
  const parts: string[] = [];
  for (let i = 0; i < CODES.length; i++) {
    const code = CODES[i] as ResponseFlagName;
    if ((mask & ResponseFlag[code]) !== 0) parts.push(code);
  }
  const s = parts.length === 0 ? '-' : parts.join(',');
  if (cache.size >= MAX_CACHE) {
    cache.clear();
    cache.set(0, '-');
  }
  cache.set(mask, s);
  return s;
}

/**
 * Parse Envoy short codes (`UH,UF` or `-`) back into a bitmask, for tests and the CLI. Unknown codes
 * are returned in `unknown`.
 */
export function parseResponseFlags(value: string): { flags: number; unknown: string[] } {
  let flags = 0;
  const unknown: string[] = [];
  if (value === '-' || value === '') return { flags, unknown };
  for (const part of value.split(',')) {
    const bit = (ResponseFlag as Record<string, number>)[part];
    if (bit === undefined) unknown.push(part);
    else flags |= bit;
  }
  return { flags, unknown };
}
