/**
 * One registry of meshtel errors with stable codes (STYLE.md §9, modelled on fastify `lib/errors.js`
 * and undici `lib/core/errors.js`).
 *
 * Errors are thrown only at configuration time. On the request path nothing throws: filters count the
 * failure and fall back (a "no peer" result, an `unknown` label, a dropped span).
 *
 * `docs/errors.md` lists every code; `test/core/errors.test.ts` keeps the two in sync.
 */

/** Every error code meshtel can raise, with the one-line meaning documented in docs/errors.md. */
export const ERROR_CODES = {
  // --- configuration (src/core, every module's options) ---
  MESHTEL_ERR_INVALID_CONFIG: 'A configuration value is missing, of the wrong type or out of range.',
  MESHTEL_ERR_INVALID_ENV: 'An environment variable (ISTIO_META_*, POD_NAME, ...) holds a value that cannot be used.',
  MESHTEL_ERR_CONFIG_FILE: 'A configuration file (YAML/JSON) cannot be read or parsed.',
  // --- workload identity (src/metadata) ---
  MESHTEL_ERR_INVALID_METADATA: 'Workload metadata fails validation (names the field and the bad value).',
  MESHTEL_ERR_INVALID_NODE_ID: 'A proxy node id is not of the form type~ip~pod.ns~ns.svc.cluster.local.',
  MESHTEL_ERR_ENCODE: 'Local metadata cannot be encoded (value too large for the configured limit).',
  MESHTEL_ERR_DECODE: 'A value given to a command-line decoder is malformed (the request path returns "no peer" instead).',
  // --- stats (src/stats) ---
  MESHTEL_ERR_INVALID_TELEMETRY: 'A Telemetry resource (telemetry.istio.io/v1) fails validation.',
  MESHTEL_ERR_INVALID_EXPRESSION: 'A tag or metric expression cannot be parsed.',
  MESHTEL_ERR_INVALID_BUCKETS: 'Histogram buckets are not a non-empty increasing list of finite numbers.',
  MESHTEL_ERR_METRIC_CONFLICT: 'A custom metric redefines a standard metric or is registered twice.',
  // --- tracing (src/tracing) ---
  MESHTEL_ERR_INVALID_TRACING: 'Tracing options (sampling, exporter, propagation formats) are invalid.',
  // --- sidecar and embedding (src/sidecar, src/embed) ---
  MESHTEL_ERR_INVALID_MESH: 'The mesh file (services, ports, endpoints) fails validation.',
  MESHTEL_ERR_LISTEN: 'A listener cannot bind its port.',
  MESHTEL_ERR_TLS: 'Certificates or keys for mutual TLS cannot be loaded or do not match.',
  MESHTEL_ERR_UPSTREAM_IDENTITY: 'An upstream certificate is not the SPIFFE identity the mesh file expects for that endpoint (the connection is refused: 503 UF).',
  MESHTEL_ERR_ALREADY_STARTED: 'A component was started twice or used after close.',
  // --- cli ---
  MESHTEL_ERR_CLI_USAGE: 'A command-line argument is missing or invalid.',
  MESHTEL_ERR_SCRAPE: 'A metrics endpoint or Prometheus server could not be read.',
} as const;

/** A stable error code, `MESHTEL_ERR_*`. */
export type MeshtelErrorCode = keyof typeof ERROR_CODES;

/** Base class of every meshtel error. Match on `code`, not on the message. */
export class MeshtelError extends Error {
  /** Stable code, listed in docs/errors.md. */
  readonly code: MeshtelErrorCode;
  /** Structured context, e.g. `{ field: 'namespace', value: '' }`. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: MeshtelErrorCode, message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MeshtelError';
    this.code = code;
    this.details = Object.freeze({ ...details });
  }
}

/** Configuration errors: bad options, environment or files. Thrown at start-up only. */
export class ConfigError extends MeshtelError {
  constructor(code: MeshtelErrorCode, message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(code, message, details, options);
    this.name = 'ConfigError';
  }
}

/** Raised for a value that cannot be decoded when the caller asked for an exception (CLI), never on the request path. */
export class DecodeError extends MeshtelError {
  constructor(message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super('MESHTEL_ERR_DECODE', message, details, options);
    this.name = 'DecodeError';
  }
}

/** True when `err` is a meshtel error, optionally with the given code. */
export function isMeshtelError(err: unknown, code?: MeshtelErrorCode): err is MeshtelError {
  return err instanceof MeshtelError && (code === undefined || err.code === code);
}

/**
 * Render a value for an error message: strings quoted and cut at 80 characters so a 60 KiB header
 * never ends up in a log line.
 */
export function quote(value: unknown): string {
  let s: string;
  try {
    s = typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
  } catch {
    s = String(value);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
