/**
 * Configuration plumbing shared by every module (STYLE.md §10): defaults, then environment (Istio's
 * own variable names where Istio has one), then explicit options; validated once, then frozen.
 * Validation messages quote the bad value and name where it came from.
 */
import { ConfigError, quote } from './errors.js';

/** Istio's well-known proxy ports (istio/istio `pkg/config/mesh/mesh.go`, injection template). */
export const ISTIO_PORTS = Object.freeze({
  /** Envoy admin, localhost only. */
  ADMIN: 15000,
  /** Outbound capture listener. */
  OUTBOUND: 15001,
  /** Inbound capture listener. */
  INBOUND: 15006,
  /** pilot-agent status server: merged /stats/prometheus, /healthz/ready. */
  STATUS: 15020,
  /** Envoy readiness listener, /healthz/ready. */
  HEALTH: 15021,
  /** Envoy /stats/prometheus listener. */
  PROMETHEUS: 15090,
});

/** An environment map; defaults to process.env but tests pass their own. */
export type Env = Readonly<Record<string, string | undefined>>;

/** Where a value came from, for error messages. */
export type Origin = string;

/** Parse an integer in [min, max]; `undefined` passes through. Throws ConfigError naming origin and value. */
export function parseIntInRange(raw: string | number | undefined, origin: Origin, min: number, max: number): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const n = typeof raw === 'number' ? raw : Number(raw.trim());
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(
      'MESHTEL_ERR_INVALID_CONFIG',
      `${origin} must be an integer between ${min} and ${max}, got ${quote(raw)}`,
      { field: origin, value: raw },
    );
  }
  return n;
}

/** Parse a finite number in [min, max]; `undefined` passes through. */
export function parseNumberInRange(raw: string | number | undefined, origin: Origin, min: number, max: number): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const n = typeof raw === 'number' ? raw : Number(raw.trim());
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new ConfigError(
      'MESHTEL_ERR_INVALID_CONFIG',
      `${origin} must be a number between ${min} and ${max}, got ${quote(raw)}`,
      { field: origin, value: raw },
    );
  }
  return n;
}

/** Parse a port number (0 means "any free port"). */
export function parsePort(raw: string | number | undefined, origin: Origin): number | undefined {
  return parseIntInRange(raw, origin, 0, 65535);
}

/** Parse a boolean the way Istio's env vars are written: true/false/1/0/yes/no (any case). */
export function parseBool(raw: string | boolean | undefined, origin: Origin): boolean | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw === 'boolean') return raw;
  const v = raw.trim().toLowerCase();
  if (v === 'true' || v === '1' || v === 'yes' || v === 'on') return true;
  if (v === 'false' || v === '0' || v === 'no' || v === 'off') return false;
  throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${origin} must be true or false, got ${quote(raw)}`, {
    field: origin,
    value: raw,
  });
}

/** Parse a Go-style duration (`5s`, `100ms`, `1m30s`) or a bare number of milliseconds into milliseconds. */
export function parseDurationMs(raw: string | number | undefined, origin: Origin): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw === 'number') {
    if (!Number.isFinite(raw) || raw < 0) throw badDuration(raw, origin);
    return raw;
  }
  const s = raw.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const unit = m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 3_600_000;
    total += Number(m[1]) * unit;
    matched = re.lastIndex;
  }
  if (matched === 0 || matched !== s.length) throw badDuration(raw, origin);
  return total;
}

function badDuration(raw: unknown, origin: Origin): ConfigError {
  return new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${origin} must be a duration such as "5s" or "250ms", got ${quote(raw)}`, {
    field: origin,
    value: raw,
  });
}

/** Deep-freeze a plain configuration object so no module mutates shared config after validation. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}
