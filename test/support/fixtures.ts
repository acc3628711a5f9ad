/**
 * Reference data copied into the repository (test/fixtures/, sources and licences in its README.md): the
 * metadata-exchange vectors and Istio's own Grafana dashboards. Tests read only these copies, never a folder
 * outside the checkout, so a fresh clone runs every test.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** Absolute path of the repository root. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Absolute path of `test/fixtures`. */
export const FIXTURES_DIR = path.join(REPO_ROOT, 'test/fixtures');

/** One entry of `test/fixtures/mx-vectors.json`. */
export interface MxVector {
  source: string;
  kind: string;
  header: string;
  value: string;
  decoded: Record<string, unknown>;
  note?: string;
}

let vectors: MxVector[] | undefined;

/** Every vector of `test/fixtures/mx-vectors.json` (read once). */
export function loadMxVectors(): MxVector[] {
  vectors ??= JSON.parse(readFileSync(path.join(FIXTURES_DIR, 'mx-vectors.json'), 'utf8')) as MxVector[];
  return vectors;
}

/** Vector `i`, failing loudly when the file has no such entry. */
export function mxVector(i: number): MxVector {
  const v = loadMxVectors()[i];
  if (!v) throw new Error(`test/fixtures/mx-vectors.json has no vector [${i}]`);
  return v;
}

/** Path of one of Istio's dashboards copied into `test/fixtures/istio-dashboards`. */
export function istioDashboardPath(file: string): string {
  return path.join(FIXTURES_DIR, 'istio-dashboards', file);
}
