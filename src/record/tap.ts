/**
 * The live request tap: one small record per finished HTTP/gRPC request, published on a
 * `node:diagnostics_channel` channel, and a streaming endpoint that serves a filtered, sampled, rate-limited
 * view of it (after `linkerd viz tap`, which Istio has no equivalent of).
 *
 * Cost model: the filters call {@link publishHttpTap} behind `tapChannel.hasSubscribers`, so while nobody taps a
 * request pays one property read and no record is built. A tap session subscribes when it starts and
 * unsubscribes when it ends.
 *
 * Redaction: a record carries only the fields below. No header value, no query string (the path is cut at `?`),
 * no body, no address. Strings are capped at {@link TAP_MAX_FIELD} characters. See docs/security.md
 * ("The live tap").
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import type { HttpStreamAttributes, Reporter } from '../stats/types.js';
import { formatResponseFlags } from '../stats/response-flags.js';

/** Channel name; subscribe with `diagnostics_channel.subscribe(TAP_CHANNEL_NAME, fn)` to see every record in-process. */
export const TAP_CHANNEL_NAME = 'meshtel:tap';

/** The process-wide tap channel (every sidecar and embedding of this process publishes here). */
export const tapChannel = diagnosticsChannel.channel(TAP_CHANNEL_NAME);

/** Longest authority/path/workload kept in a record; longer values are cut. */
export const TAP_MAX_FIELD = 256;

/** One finished request as the tap shows it. */
export interface TapRecord {
  /** End of the request, ms since the epoch. */
  readonly time: number;
  /** Which side recorded it. */
  readonly reporter: Reporter;
  /** `inbound` (destination reporter) or `outbound` (source / waypoint). */
  readonly direction: 'inbound' | 'outbound';
  /** The workload that recorded it. */
  readonly workload: string;
  readonly namespace: string;
  /** The other side from metadata exchange, `unknown` when it was not learnt. */
  readonly peerWorkload: string;
  readonly peerNamespace: string;
  /** Why the peer is unknown (the `reason` of `meshtel_peer_unknown_total`). */
  readonly peerUnknownReason?: string;
  readonly protocol: 'http' | 'grpc';
  readonly method: string;
  readonly authority: string;
  /** Path without the query string. */
  readonly path: string;
  /** HTTP status, 0 when no response was sent. */
  readonly code: number;
  readonly grpcStatus?: string;
  /** Envoy's `response_flags` (`-` when none). */
  readonly flags: string;
  readonly durationMs: number;
  /** Trace id of a sampled span. */
  readonly traceId?: string;
}

/** The local identity a record is published for. */
export interface TapLocal {
  readonly workload: string;
  readonly namespace: string;
}

function cap(s: string): string {
  return s.length > TAP_MAX_FIELD ? s.slice(0, TAP_MAX_FIELD) : s;
}

/**
 * Build and publish the record of a finished request. Call it only behind `tapChannel.hasSubscribers`. Never
 * throws: a failure here must not reach the proxy.
 */
export function publishHttpTap(local: TapLocal, a: HttpStreamAttributes): void {
  try {
    const path = a.path ?? '';
    const q = path.indexOf('?');
    const record: TapRecord = {
      time: Date.now(),
      reporter: a.reporter,
      direction: a.reporter === 'destination' ? 'inbound' : 'outbound',
      workload: local.workload,
      namespace: local.namespace,
      peerWorkload: cap(a.peer?.workload || 'unknown'),
      peerNamespace: cap(a.peer?.namespace || 'unknown'),
      ...(a.peer === null && a.peerUnknownReason !== undefined ? { peerUnknownReason: a.peerUnknownReason } : {}),
      protocol: a.protocol,
      method: cap(a.method ?? ''),
      authority: cap(a.authority),
      path: cap(q < 0 ? path : path.slice(0, q)),
      code: a.responseCode,
      ...(a.grpcStatus !== undefined ? { grpcStatus: cap(a.grpcStatus) } : {}),
      flags: formatResponseFlags(a.responseFlags),
      durationMs: Math.round(a.durationMs * 1000) / 1000,
      ...(a.traceId ? { traceId: a.traceId } : {}),
    };
    tapChannel.publish(record);
  } catch {
    // A subscriber's own failure is reported by diagnostics_channel on its own; ours is dropped.
  }
}

/** Limits of a tap endpoint. */
export interface TapHandlerOptions {
  /** Records are those this workload recorded. */
  readonly local: TapLocal;
  /** Where `meshtel_tap_*` metrics are registered (reused when already there). */
  readonly registry?: Registry;
  /** Concurrent sessions; default 4. Further ones get 429. */
  readonly maxSessions?: number;
  /** Highest records/second a session may ask for (`?rate=`); default 100. */
  readonly maxRate?: number;
  /** Records held while the client reads slowly; default 1000. Further ones are dropped and counted. */
  readonly bufferRecords?: number;
  /** A session ends after this long; default 10 minutes. */
  readonly maxDurationMs?: number;
  /** Allow non-loopback clients (the embedding behind its own authorisation). Default false. */
  readonly allowRemote?: boolean;
}

/** The metrics every tap handler on a registry shares. */
interface TapMetrics {
  readonly records: Counter<string>;
  readonly dropped: Counter<'reason'>;
  readonly refused: Counter<'reason'>;
  readonly sessions: Gauge<string>;
}

const metricsByRegistry = new WeakMap<Registry, TapMetrics>();
const NO_REGISTRY: Registry[] = [];

function tapMetrics(registry: Registry | undefined): TapMetrics {
  const hit = registry ? metricsByRegistry.get(registry) : undefined;
  if (hit) return hit;
  const registers = registry ? [registry] : NO_REGISTRY;
  const m: TapMetrics = {
    records: new Counter({ name: 'meshtel_tap_records_total', help: 'Tap records sent to tap sessions.', registers }),
    dropped: new Counter({
      name: 'meshtel_tap_dropped_total',
      help: 'Tap records not sent: rate_limited (over the session rate), buffer_full (client reading too slowly).',
      labelNames: ['reason'],
      registers,
    }),
    refused: new Counter({
      name: 'meshtel_tap_refused_total',
      help: 'Tap sessions refused: not_loopback, too_many_sessions, bad_request.',
      labelNames: ['reason'],
      registers,
    }),
    sessions: new Gauge({ name: 'meshtel_tap_sessions', help: 'Open tap sessions.', registers }),
  };
  if (registry) metricsByRegistry.set(registry, m);
  return m;
}

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || a.startsWith('127.');
}

/** Parsed `?peer=&sample=&rate=` of a tap request. */
export interface TapQuery {
  /** Only records whose peer workload is this. */
  readonly peer?: string;
  /** Share of records kept, 0 < sample ≤ 1 (every ⌊n·sample⌋ step is kept, so the share is exact). */
  readonly sample: number;
  /** Records per second at most. */
  readonly rate: number;
  readonly sse: boolean;
}

/** Parse the query of a tap request; null when a value is out of range. */
export function parseTapQuery(url: string, accept: string | undefined, maxRate: number): TapQuery | null {
  const params = new URL(url, 'http://tap.invalid').searchParams;
  const sample = params.has('sample') ? Number(params.get('sample')) : 1;
  const rate = params.has('rate') ? Number(params.get('rate')) : maxRate;
  if (!(sample > 0 && sample <= 1) || !(rate > 0 && rate <= maxRate)) return null;
  const peer = params.get('peer');
  const sse = params.get('format') === 'sse' || (params.get('format') !== 'ndjson' && (accept ?? '').includes('text/event-stream'));
  return { ...(peer ? { peer } : {}), sample, rate, sse };
}

/**
 * A node `(req, res)` handler that streams this workload's records as NDJSON (default) or Server-Sent Events
 * (`Accept: text/event-stream` or `?format=sse`). Mount it on a loopback admin listener (the sidecar does, at
 * `:15000/tap`) or in an app behind its own authorisation (the embedding, with `allowRemote`).
 */
export function createTapHandler(options: TapHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const maxSessions = options.maxSessions ?? 4;
  const maxRate = options.maxRate ?? 100;
  const bufferRecords = options.bufferRecords ?? 1000;
  const maxDurationMs = options.maxDurationMs ?? 10 * 60_000;
  const metrics = tapMetrics(options.registry);
  const { workload, namespace } = options.local;
  let open = 0;

  const refuse = (res: ServerResponse, status: number, reason: string): void => {
    metrics.refused.inc({ reason });
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(`tap refused: ${reason}\n`);
  };

  return (req, res) => {
    if (!options.allowRemote && !isLoopbackAddress(req.socket.remoteAddress)) return refuse(res, 403, 'not_loopback');
    const query = parseTapQuery(req.url ?? '/', req.headers.accept, maxRate);
    if (query === null) return refuse(res, 400, 'bad_request');
    if (open >= maxSessions) return refuse(res, 429, 'too_many_sessions');
    open++;
    metrics.sessions.inc();

    res.writeHead(200, {
      'content-type': query.sse ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    // Flush the head now so a client sees the stream open before the first record.
    res.write(query.sse ? ': meshtel tap\n\n' : '');

    let seen = 0;
    let kept = 0;
    // Token bucket: `rate` records per second, a burst of one second's worth.
    let tokens = query.rate;
    let refilledAt = performance.now();
    const queue: string[] = [];
    let blocked = false;

    const onRecord = (message: unknown): void => {
      const r = message as TapRecord;
      if (r.workload !== workload || r.namespace !== namespace) return;
      if (query.peer !== undefined && r.peerWorkload !== query.peer) return;
      seen++;
      const step = Math.floor(seen * query.sample);
      if (step === kept) return;
      kept = step;
      const now = performance.now();
      tokens = Math.min(query.rate, tokens + ((now - refilledAt) / 1000) * query.rate);
      refilledAt = now;
      if (tokens < 1) {
        metrics.dropped.inc({ reason: 'rate_limited' });
        return;
      }
      tokens -= 1;
      const line = query.sse ? `data: ${JSON.stringify(r)}\n\n` : `${JSON.stringify(r)}\n`;
      if (blocked) {
        if (queue.length >= bufferRecords) {
          metrics.dropped.inc({ reason: 'buffer_full' });
          return;
        }
        queue.push(line);
        return;
      }
      metrics.records.inc();
      if (!res.write(line)) blocked = true;
    };
    const onDrain = (): void => {
      blocked = false;
      while (queue.length > 0 && !blocked) {
        metrics.records.inc();
        if (!res.write(queue.shift() as string)) blocked = true;
      }
    };
    res.on('drain', onDrain);
    diagnosticsChannel.subscribe(TAP_CHANNEL_NAME, onRecord);
    // SSE comments keep idle proxies and browsers from timing the stream out.
    const keepAlive = setInterval(() => {
      if (!blocked) res.write(query.sse ? ': keep-alive\n\n' : '\n');
    }, 15_000);
    keepAlive.unref();
    const limit = setTimeout(() => res.end(), maxDurationMs);
    limit.unref();
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      diagnosticsChannel.unsubscribe(TAP_CHANNEL_NAME, onRecord);
      clearInterval(keepAlive);
      clearTimeout(limit);
      queue.length = 0;
      open--;
      metrics.sessions.dec();
    };
    res.once('close', close);
    req.once('close', () => {
      if (!res.writableEnded) res.end();
    });
  };
}
