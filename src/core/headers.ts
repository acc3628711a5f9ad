/**
 * Header plumbing shared by every stage. Node gives a repeated header as an array; Envoy's
 * `HeaderMap::get` (and therefore every Istio filter that reads one) uses the first value.
 */

/** The first value of a header as Node or undici hand it over (array for a repeated header), or undefined. */
export function firstHeader(value: string | readonly string[] | number | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return value[0];
}
