/**
 * The stats stage: records Istio's standard metrics exactly as istio/proxy's `istio_stats` filter does
 * (`source/extensions/filters/http/istio_stats/istio_stats.cc`, spec §4) and exposes them through a
 * prom-client `Registry` and the streaming renderer in `exposition.ts`.
 *
 * This file is the stage's interface and assembles it from one file per question:
 * - stats-plan.ts: what is recorded (validated options, families, the Telemetry plan per mode);
 * - series-cache.ts: which series a request or connection updates (peer contexts, label groups, TTL sweep);
 * - tag-values.ts: what the tag overrides evaluate to (attribute-readers.ts, attributes.ts);
 * - recording.ts: how a finished request or connection changes the numbers;
 * - tcp-connections.ts: which connections are open and what they have not reported;
 * - label-limits.ts and stats-self-metrics.ts: the value bounds and the meshtel_* families that count them.
 *
 * Hot path (STYLE.md §5–7): a finished request finds its peer context by object identity and its label group by
 * a numeric key (with tag overrides, by each value interned to a small integer), then adds numbers to the series
 * the group points at; label strings are rendered once, when a group is first built.
 *
 * Bounded: each metric has a series cap (then one overflow series, counted in
 * `meshtel_series_overflow_total{metric}`), per-label allow-lists replace refused values with
 * `overflow` (`meshtel_label_value_rejected_total{label}`), caches are capped and reset when full,
 * and series untouched for `seriesTtlMs` leave memory and the exposition (`meshtel_series_expired_total`).
 * Nothing here throws into the caller: failures are counted in `meshtel_stats_errors_total`.
 */
import { Registry, type RegistryContentType } from 'prom-client';
import type { WorkloadMetadata, UnknownPeerReason } from '../metadata/types.js';
import type { ConnectionAttributes, HttpStreamAttributes, Reporter } from './types.js';
import type { Logger } from '../core/logger.js';
import type { Family } from './series.js';
import type { TelemetryConfig } from './telemetry-api.js';
import { localLabelValues } from './labels.js';
import { createRegistryCollectors } from './registry-bridge.js';
import type { NativeHistogramOptions } from './native-histogram.js';
import type { RecorderBoundsOptions } from './recorder-bounds.js';
import { compileStatsPlan, resolveStatsOptions } from './stats-plan.js';
import { LabelLimits } from './label-limits.js';
import { TagValues } from './tag-values.js';
import { SeriesCache } from './series-cache.js';
import { TcpConnections } from './tcp-connections.js';
import { Recorder } from './recording.js';
import { StatsSelfMetrics } from './stats-self-metrics.js';

/**
 * Options of {@link createIstioStats}. The bounds (series cap, byte budgets, label length cap, TTL,
 * allow-lists, buckets, custom metrics) are {@link RecorderBoundsOptions}, validated by
 * `resolveRecorderBounds` (recorder-bounds.ts), the same function the sidecar calls at start.
 */
export interface IstioStatsOptions extends RecorderBoundsOptions {
  /** This workload's metadata (local labels, ISTIO_VERSION for istio_build). */
  readonly local: WorkloadMetadata;
  /** prom-client registry the metrics are registered in (text or OpenMetrics); default a new Registry. */
  readonly registry?: Registry<RegistryContentType>;
  /** Parsed Telemetry API configuration (`parseTelemetry`). */
  readonly telemetry?: TelemetryConfig;
  /**
   * Native (sparse exponential) buckets on the three istio histograms, beside the classic ones; served in
   * the protobuf exposition only. Off by default (see docs/architecture.md "Exposition"): `true` for
   * schema 3, or the schema, zero threshold and bucket bound (native-histogram.ts).
   */
  readonly nativeHistograms?: boolean | NativeHistogramOptions;
  /** Never use the Host header as destination_service (Istio: gateways; inbound never uses it). */
  readonly disableHostHeaderFallback?: boolean;
  /** Periodic TCP/gRPC report interval, Istio's `tcp_reporting_duration` (default 5000 ms; 0 = only at close). */
  readonly tcpReportingIntervalMs?: number;
  /** Clock in ms (tests). */
  readonly now?: () => number;
  readonly logger?: Logger;
}

/** Byte counters of one TCP connection; deltas are reported periodically and at close. */
export interface TcpConnectionStats {
  /** Count bytes received from the downstream (`istio_tcp_received_bytes_total`). */
  addReceived(bytes: number): void;
  /** Count bytes sent to the downstream (`istio_tcp_sent_bytes_total`). */
  addSent(bytes: number): void;
  /** Report the pending byte deltas now. */
  flush(): void;
  /**
   * Final flush and `istio_tcp_connections_closed_total` +1. Envoy fixes a connection's labels when it
   * first reports; meshtel does too, except that non-zero `responseFlags` given here label the close
   * and the final byte deltas (so failed connections show their flags). Idempotent.
   */
  close(responseFlags?: number): void;
}

/** The stats stage. */
export interface IstioStats {
  /** Registry the istio_* and meshtel_* metrics are visible through. */
  readonly registry: Registry<RegistryContentType>;
  /** One finished HTTP/gRPC stream: requests_total +1 and the three histograms. Never throws. */
  recordHttp(attrs: HttpStreamAttributes): void;
  /**
   * Whether {@link recordHttp} can read `requestHeaders` / `responseHeaders`: only a Telemetry tag override or a
   * custom metric's expression does. When false a caller may leave them undefined instead of copying headers
   * per request (the fastify plugin skips `res.getHeaders()`).
   */
  readonly readsHeaders: boolean;
  /** gRPC message-count deltas (periodic and final reports of streaming calls). Never throws. */
  recordGrpcMessages(attrs: HttpStreamAttributes, requestMessages: number, responseMessages: number): void;
  /** A TCP connection whose peer is known: opened_total +1 now. Never throws. */
  openTcp(attrs: ConnectionAttributes): TcpConnectionStats;
  /** Count why a peer was unknown: `meshtel_peer_unknown_total{reason,reporter}`. */
  recordPeerUnknown(reason: UnknownPeerReason, reporter: Reporter): void;
  /** Run the TTL sweep now (the timer calls it every `seriesTtlMs / 4`). Returns series removed. */
  sweep(): number;
  /** Report every open TCP connection's pending deltas now (the timer calls it). */
  flushTcp(): void;
  /** Families in exposition order, for `exposition.ts`. Self metrics are refreshed by this call. */
  families(): readonly Family[];
  /** Stop timers and unregister nothing; recording after close is ignored. */
  close(): void;
}


/** Create the stats stage. Validates options (throws ConfigError), then never throws again. */
export function createIstioStats(options: IstioStatsOptions): IstioStats {
  return new IstioStatsImpl(options);
}

class IstioStatsImpl implements IstioStats {
  readonly registry: Registry<RegistryContentType>;
  readonly readsHeaders: boolean;
  private readonly recorder: Recorder;
  private readonly cache: SeriesCache;
  private readonly connections = new TcpConnections();
  private readonly self: StatsSelfMetrics;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(o: IstioStatsOptions) {
    const settings = resolveStatsOptions(o);
    const { local, bounds, istio, custom, clock, logger } = settings;
    const limits = new LabelLimits(bounds.maxLabelValueLength, bounds.labelAllowList);
    const plan = compileStatsPlan(settings.telemetry, custom);
    // Every header read is an expression: a tag override (plan.exprs) or a custom metric's value.
    this.readsHeaders = plan.exprs.length > 0 || custom.length > 0;
    const tags = new TagValues(local, plan, limits);
    this.cache = new SeriesCache({
      istio,
      custom,
      localValues: localLabelValues(local),
      hostFallback: settings.hostFallback,
      limits,
      tags,
      exprCount: plan.exprs.length,
      ttlMs: bounds.seriesTtlMs,
      clock,
    });
    // The recorder counts its errors; the self metrics read them when the page is rendered.
    this.self = new StatsSelfMetrics(local, settings.telemetry, { istio, custom, limits, budget: settings.budget, errors: () => this.recorder.errors }, logger);
    this.recorder = new Recorder({
      plan,
      cache: this.cache,
      tags,
      limits,
      istio,
      custom,
      peerUnknown: this.self.peerUnknown,
      connections: this.connections,
      clock,
      logger,
    });

    this.registry = settings.registry ?? new Registry();
    createRegistryCollectors(this.registry, () => this.families(), (name) => this.cache.resetFamily(name));

    if (bounds.seriesTtlMs > 0) {
      const t = setInterval(() => this.sweep(), Math.max(250, Math.floor(bounds.seriesTtlMs / 4)));
      t.unref();
      this.timers.push(t);
    }
    if (settings.tcpIntervalMs > 0) {
      const t = setInterval(() => this.flushTcp(), settings.tcpIntervalMs);
      t.unref();
      this.timers.push(t);
    }
  }

  recordHttp(a: HttpStreamAttributes): void {
    this.recorder.recordHttp(a);
  }

  recordGrpcMessages(a: HttpStreamAttributes, requestMessages: number, responseMessages: number): void {
    this.recorder.recordGrpcMessages(a, requestMessages, responseMessages);
  }

  openTcp(a: ConnectionAttributes): TcpConnectionStats {
    return this.recorder.openTcp(a);
  }

  recordPeerUnknown(reason: UnknownPeerReason, reporter: Reporter): void {
    this.recorder.recordPeerUnknown(reason, reporter);
  }

  sweep(): number {
    return this.cache.sweep();
  }

  flushTcp(): void {
    this.connections.flushAll();
  }

  families(): readonly Family[] {
    return this.self.families();
  }

  close(): void {
    if (this.recorder.closed) return;
    this.connections.closeAll();
    this.recorder.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
  }
}
