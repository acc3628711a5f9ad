/**
 * The bounded set of recent exemplars a native histogram keeps, as client_golang keeps it
 * (prometheus/client_golang `prometheus/histogram.go`, `nativeExemplars.addExemplar`, written for
 * `NativeHistogramMaxExemplars` / `NativeHistogramExemplarTTL`, defaults 10 and 5 minutes). A native
 * histogram has no bucket to hang one exemplar on, so client_model's `Histogram` carries them in
 * `repeated Exemplar exemplars = 16`, beside the classic buckets' own (which are kept as before).
 *
 * The set is ordered by value. Until it is full a new exemplar is inserted in order. Once full, one
 * exemplar gives way: the oldest if it is older than the TTL, else the older one of the pair closest together
 * on a log scale, unless the new exemplar would itself sit closer to a neighbour, which it then replaces, so
 * the values stay spread over the distribution. Each step below is client_golang's, comparisons included
 * (NaN differences and `Math.log` of 0 or a negative value behave as Go's `math.Log` does).
 *
 * Who reads them: Prometheus newer than 2.42 takes a native histogram's exemplars from this field when it is
 * present (they must have timestamps, which meshtel's always do), else from the classic buckets; Prometheus
 * 2.42 reads only the classic buckets' exemplars and skips field 16 as unknown.
 */
import type { Exemplar } from './series.js';

/** Default bound on a native histogram's exemplars (client_golang's default `NativeHistogramMaxExemplars`). */
export const DEFAULT_NATIVE_MAX_EXEMPLARS = 10;
/** Default age after which the oldest exemplar gives way first (client_golang's `NativeHistogramExemplarTTL`). */
export const DEFAULT_NATIVE_EXEMPLAR_TTL_MS = 5 * 60 * 1000;

/**
 * Add `e` to `list` (ordered by value, at most `max` long), as client_golang's `addExemplar`. `ttlSeconds`
 * compares with the exemplars' timestamps (seconds); a negative TTL always replaces the oldest.
 */
export function addNativeExemplar(list: Exemplar[], e: Exemplar, max: number, ttlSeconds: number): void {
  if (max <= 0) return;
  if (list.length < max) {
    let at = 0;
    while (at < list.length && !(e.value < (list[at] as Exemplar).value)) at++;
    list.splice(at, 0, e);
    return;
  }
  if (list.length === 1) {
    list[0] = e;
    return;
  }
  let oldest = 0;
  let oldestIdx = -1;
  let md = -1;
  let nIdx = -1;
  let rIdx = -1;
  let cLog = 0;
  let pLog = 0;
  for (let i = 0; i < list.length; i++) {
    const x = list[i] as Exemplar;
    if (oldestIdx === -1 || x.timestamp < oldest) {
      oldest = x.timestamp;
      oldestIdx = i;
    }
    if (nIdx === -1 && e.value <= x.value) nIdx = i;
    pLog = cLog;
    cLog = Math.log(x.value);
    if (i === 0) continue;
    const diff = Math.abs(cLog - pLog);
    if (md === -1 || diff < md) {
      md = diff;
      rIdx = x.timestamp < (list[i - 1] as Exemplar).timestamp ? i : i - 1;
    }
  }
  if (nIdx === -1) nIdx = list.length;
  if (oldestIdx !== -1 && e.timestamp - oldest > ttlSeconds) rIdx = oldestIdx;
  else {
    // The pair the new exemplar would form with its neighbours was not in the search above.
    const eLog = Math.log(e.value);
    if (nIdx > 0) {
      const diff = Math.abs(eLog - Math.log((list[nIdx - 1] as Exemplar).value));
      if (diff < md) {
        md = diff;
        rIdx = nIdx - 1;
      }
    }
    if (nIdx < list.length) {
      const diff = Math.abs(Math.log((list[nIdx] as Exemplar).value) - eLog);
      if (diff < md) rIdx = nIdx;
    }
  }
  if (rIdx === nIdx) list[nIdx] = e;
  else if (rIdx < nIdx) {
    // Remove rIdx, then insert before what was at nIdx (now nIdx - 1).
    list.splice(rIdx, 1);
    list.splice(nIdx - 1, 0, e);
  } else {
    list.splice(rIdx, 1);
    list.splice(nIdx, 0, e);
  }
}
