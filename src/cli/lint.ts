/**
 * `meshtel lint telemetry.yaml`: validate Telemetry resources (telemetry.istio.io/v1) with the stats
 * stage's own parser, then show what each metric will look like per mode (CLIENT = outbound sidecar and
 * gateways, reporter=source; SERVER = inbound, reporter=destination).
 *
 * The label sets are not re-derived here: a private stats recorder built with the configuration records
 * one synthetic HTTP stream, gRPC message report and TCP connection per reporter, and the label names are
 * read back from its exposition. So what lint prints is what the sidecar will emit, by construction.
 */
import { Registry } from 'prom-client';
import { createIstioStats } from '../stats/istio-stats.js';
import { parseTelemetry } from '../stats/telemetry-api.js';
import type { TelemetryConfig } from '../stats/telemetry-api.js';
import { HTTP_LABELS, METRICS, TCP_LABELS } from '../stats/definitions.js';
import type { HttpStreamAttributes } from '../stats/types.js';
import { createWorkloadMetadata } from '../metadata/workload.js';
import { parseExposition } from '../stats/exposition-parser.js';

/** One metric in one mode. */
export interface LintMetric {
  /** Prometheus name, e.g. `istio_requests_total`. */
  readonly metric: string;
  /** Telemetry API name, e.g. `REQUEST_COUNT`. */
  readonly telemetryName: string;
  readonly mode: 'CLIENT' | 'SERVER';
  readonly enabled: boolean;
  /** Label names in emission order (empty when disabled). */
  readonly labels: readonly string[];
  /** The standard tags of this metric (25 HTTP, 20 gRPC message, 23 TCP), for comparison. */
  readonly standard: readonly string[];
  /** Tags whose value is a CEL expression: standard tags replaced in place and added tags. */
  readonly expressions: Readonly<Record<string, string>>;
  /** Standard tags removed. */
  readonly removed: readonly string[];
}

/** The result of {@link lintTelemetry}. */
export interface LintResult {
  readonly config: TelemetryConfig;
  /** Tag expressions that do not compile: the tag is dropped (as Envoy does), the rest applies. */
  readonly warnings: readonly string[];
  readonly metrics: readonly LintMetric[];
}

/** Validate Telemetry YAML (throws ConfigError MESHTEL_ERR_INVALID_TELEMETRY / _INVALID_EXPRESSION) and compute the metric views. */
export async function lintTelemetry(text: string): Promise<LintResult> {
  const config = parseTelemetry(text);
  const local = createWorkloadMetadata({ name: 'lint-0', namespace: 'default', workload: 'lint', labels: { app: 'lint', version: 'v1' } });
  const registry = new Registry();
  const stats = createIstioStats({ local, registry, telemetry: config, tcpReportingIntervalMs: 0 });
  try {
    for (const reporter of ['source', 'destination'] as const) {
      const attrs: HttpStreamAttributes = {
        reporter,
        peer: null,
        peerPrincipal: '',
        localPrincipal: '',
        service: { host: 'lint.default.svc.cluster.local', name: 'lint', namespace: 'default' },
        authority: 'lint:80',
        protocol: 'grpc',
        responseCode: 200,
        grpcStatus: '0',
        responseFlags: 0,
        durationMs: 1,
        requestBytes: 1,
        responseBytes: 1,
        method: 'POST',
        path: '/lint',
        requestHeaders: {},
        responseHeaders: {},
      };
      stats.recordHttp(attrs);
      stats.recordGrpcMessages(attrs, 1, 1);
      const tcp = stats.openTcp({ reporter, peer: null, peerPrincipal: '', localPrincipal: '', service: attrs.service });
      tcp.addReceived(1);
      tcp.addSent(1);
      tcp.close();
    }
    const samples = parseExposition(await registry.metrics());
    const metrics: LintMetric[] = [];
    for (const mode of ['CLIENT', 'SERVER'] as const) {
      const reporter = mode === 'CLIENT' ? 'source' : 'destination';
      for (const def of METRICS) {
        const names = def.type === 'histogram' ? [`${def.name}_bucket`] : [def.name];
        const sample = samples.find((s) => names.includes(s.name) && s.labels.reporter === reporter)
          // `reporter` itself may have been removed or replaced: fall back to any series of the metric,
          // told apart by which synthetic request (source first) produced it.
          ?? samples.filter((s) => names.includes(s.name))[mode === 'CLIENT' ? 0 : 1];
        const labels = sample ? Object.keys(sample.labels).filter((l) => l !== 'le') : [];
        const { expressions, removed } = overridesFor(config, def.telemetryName, mode);
        const standard: readonly string[] =
          def.kind === 'tcp' ? TCP_LABELS : def.type === 'counter' && def.name.endsWith('messages_total') ? HTTP_LABELS.slice(0, 20) : HTTP_LABELS;
        metrics.push({ metric: def.name, telemetryName: def.telemetryName, mode, enabled: sample !== undefined, labels, standard, expressions, removed });
      }
    }
    const warnings = config.expressionErrors.map((f) => `warning: ${f.field}: tag ${f.tag} is dropped: ${f.message}`);
    return { config, warnings, metrics };
  } finally {
    stats.close();
  }
}

/** The net tag overrides for one metric and mode, applied in resource order as the stats stage does. */
function overridesFor(config: TelemetryConfig, telemetryName: string, mode: 'CLIENT' | 'SERVER'): { expressions: Record<string, string>; removed: string[] } {
  const expressions: Record<string, string> = {};
  const removed = new Set<string>();
  for (const ov of config.overrides) {
    if (ov.metric !== 'ALL_METRICS' && ov.metric !== telemetryName) continue;
    if (ov.mode !== 'CLIENT_AND_SERVER' && ov.mode !== mode) continue;
    for (const [tag, t] of Object.entries(ov.tagOverrides)) {
      if (ov.customMetric !== undefined) continue;
      if (t.operation === 'INVALID') {
        // Dropped as the stats stage drops it (a standard tag disappears, an added one is not added).
        delete expressions[tag];
        if ((HTTP_LABELS as readonly string[]).includes(tag)) removed.add(tag);
      } else if (t.operation === 'REMOVE') {
        delete expressions[tag];
        if ((HTTP_LABELS as readonly string[]).includes(tag)) removed.add(tag);
      } else {
        expressions[tag] = t.value;
        removed.delete(tag);
      }
    }
  }
  return { expressions, removed: [...removed] };
}
