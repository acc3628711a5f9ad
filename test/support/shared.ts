/**
 * Access to `../shared` (the reference material next to the checkout): the MX vectors and Istio's own
 * dashboards. Under `CI=true` a missing folder is a failure with a clear message, never a skip.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** Absolute path of the repository root. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Absolute path of `../shared`. */
export const SHARED_DIR = path.resolve(REPO_ROOT, '../shared');

/** One entry of `compat/mx-vectors.json`. */
export interface MxVector {
  source: string;
  kind: string;
  header: string;
  value: string;
  decoded: Record<string, unknown>;
  note?: string;
}

/** True when `../shared/compat` is present. Throws under CI=true when it is not. */
export function hasSharedCompat(): boolean {
  const ok = existsSync(path.join(SHARED_DIR, 'compat'));
  if (!ok && process.env.CI === 'true') {
    throw new Error(`../shared/compat is missing (looked in ${SHARED_DIR}); CI must run from a clone next to shared/`);
  }
  return ok;
}

/** Load every vector of `compat/mx-vectors.json`. */
export function loadMxVectors(): MxVector[] {
  hasSharedCompat();
  return JSON.parse(readFileSync(path.join(SHARED_DIR, 'compat/mx-vectors.json'), 'utf8')) as MxVector[];
}
