/**
 * Finding the binaries the tests drive (Prometheus, promtool, chromium): on PATH first, then Debian's /usr/bin. Under CI=true a missing
 * binary is a failure with a clear message (CI installs Debian's prometheus package), elsewhere the caller skips.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

/** Absolute path of `name` on PATH or in /usr/bin, or undefined. */
export function findBinary(name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter), '/usr/bin']) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** The Debian package that provides each binary the tests need (`.ci/run` installs them). */
const PACKAGE_OF = { promtool: 'prometheus', prometheus: 'prometheus', chromium: 'chromium' } as const;

/** Path of `name`; undefined (with a warning) when absent outside CI; throws under CI=true. */
export function requireBinary(name: keyof typeof PACKAGE_OF): string | undefined {
  const found = findBinary(name);
  if (found !== undefined) return found;
  const message = `${name} is missing: install Debian's ${PACKAGE_OF[name]} package (apt-get install -y ${PACKAGE_OF[name]})`;
  if (process.env.CI === 'true') throw new Error(message);
  console.warn(`skipping: ${message}`);
  return undefined;
}
