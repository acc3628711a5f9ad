/**
 * The recorder's own metrics: `istio_build` and the `meshtel_*` families that count what the bounds did (series
 * overflow and expiry, refused and cut label values, budget refusals, dropped recordings, tag expressions that did
 * not compile). The hot path keeps these counts as plain numbers; {@link StatsSelfMetrics.families} copies them
 * into their series when the page is rendered.
 */
import type { WorkloadMetadata } from '../metadata/types.js';
import type { Logger } from '../core/logger.js';
import {
  ISTIO_BUILD,
  MESHTEL_LABEL_VALUE_REJECTED_TOTAL,
  MESHTEL_LABEL_VALUE_TRUNCATED_TOTAL,
  MESHTEL_PEER_UNKNOWN_TOTAL,
  MESHTEL_SERIES_ACTIVE,
  MESHTEL_SERIES_BUDGET_LIMIT_BYTES,
  MESHTEL_SERIES_BUDGET_REFUSED_TOTAL,
  MESHTEL_SERIES_BUDGET_USED_BYTES,
  MESHTEL_SERIES_EXPIRED_TOTAL,
  MESHTEL_SERIES_OVERFLOW_TOTAL,
  MESHTEL_STATS_ERRORS_TOTAL,
  MESHTEL_TELEMETRY_EXPRESSION_ERRORS_TOTAL,
} from './definitions.js';
import { Family, escapeLabelValue, type ScalarSeries } from './series.js';
import type { SeriesBudget } from './series-budget.js';
import type { TelemetryConfig } from './telemetry-api.js';
import type { LabelLimits } from './label-limits.js';
import type { CompiledCustomMetric } from './custom-metrics.js';

/** What the self metrics read their numbers from. */
export interface SelfMetricSources {
  readonly istio: readonly Family[];
  readonly custom: readonly CompiledCustomMetric[];
  readonly limits: LabelLimits;
  readonly budget: SeriesBudget;
  /** Recordings dropped so far. */
  errors(): number;
}

/** The self-metric families of one recorder. */
export class StatsSelfMetrics {
  private readonly build: Family;
  /** `meshtel_peer_unknown_total`, counted by the recorder directly. */
  readonly peerUnknown: Family;
  private readonly overflowFam: Family;
  private readonly rejectedFam: Family;
  private readonly expiredFam: Family;
  private readonly errorsFam: Family;
  private readonly activeFam: Family;
  private readonly exprErrorsFam: Family;
  private readonly truncatedFam: Family;
  private readonly budgetRefusedFam: Family;
  private readonly budgetUsedFam: Family;
  private readonly budgetLimitFam: Family;
  private readonly sources: SelfMetricSources;

  constructor(local: WorkloadMetadata, telemetry: TelemetryConfig | undefined, sources: SelfMetricSources, logger: Logger) {
    this.sources = sources;
    this.build = new Family(ISTIO_BUILD, 'gauge', 'Istio component build: 1 with the proxy version as tag.', 1);
    const buildSeries = this.build.get(`component="proxy",tag="${escapeLabelValue(local.istioVersion || 'unknown')}"`, 0);
    buildSeries.epoch = Number.MAX_SAFE_INTEGER;
    (buildSeries as ScalarSeries).value = 1;
    this.peerUnknown = new Family(MESHTEL_PEER_UNKNOWN_TOTAL, 'counter', 'Peers reported as unknown, by reason and reporter.', 256);
    this.overflowFam = new Family(MESHTEL_SERIES_OVERFLOW_TOTAL, 'counter', 'Observations routed to the overflow series of a full metric.', 64);
    this.rejectedFam = new Family(
      MESHTEL_LABEL_VALUE_REJECTED_TOTAL,
      'counter',
      'Label values replaced by "overflow" because the allow-list refused them (counted when a label set is resolved, not per request).',
      64,
    );
    this.expiredFam = new Family(MESHTEL_SERIES_EXPIRED_TOTAL, 'counter', 'Series removed after seriesTtlMs without updates.', 64);
    this.errorsFam = new Family(MESHTEL_STATS_ERRORS_TOTAL, 'counter', 'Recordings dropped because of an internal error.', 1);
    this.activeFam = new Family(MESHTEL_SERIES_ACTIVE, 'gauge', 'Live series per istio metric.', 64);
    this.truncatedFam = new Family(
      MESHTEL_LABEL_VALUE_TRUNCATED_TOTAL,
      'counter',
      'Label values cut to maxLabelValueLength (peer and local labels once per peer context or label set; tag-override and custom-metric values per request).',
      256,
    );
    this.budgetRefusedFam = new Family(
      MESHTEL_SERIES_BUDGET_REFUSED_TOTAL,
      'counter',
      'New label sets sent to the overflow series because the exposition budget or the plain-text share was spent.',
      2,
    );
    this.budgetUsedFam = new Family(MESHTEL_SERIES_BUDGET_USED_BYTES, 'gauge', 'Bytes the live series take at their longest rendered form.', 2);
    this.budgetLimitFam = new Family(MESHTEL_SERIES_BUDGET_LIMIT_BYTES, 'gauge', 'Configured exposition byte budgets.', 2);
    (this.budgetLimitFam.get('budget="exposition"', 0) as ScalarSeries).value = sources.budget.maxBytes;
    (this.budgetLimitFam.get('budget="plain_text"', 0) as ScalarSeries).value = sources.budget.maxPlainTextBytes;
    this.exprErrorsFam = new Family(
      MESHTEL_TELEMETRY_EXPRESSION_ERRORS_TOTAL,
      'counter',
      'Telemetry tag expressions that did not compile; the tag is dropped as Envoy does, the rest of the configuration applies.',
      256,
    );
    for (const f of telemetry?.expressionErrors ?? []) {
      (this.exprErrorsFam.get(`metric="${escapeLabelValue(f.metric)}",tag="${escapeLabelValue(f.tag)}"`, 0) as ScalarSeries).value += 1;
      logger.warn('meshtel stats: Telemetry tag expression does not compile; the tag is dropped', {
        field: f.field,
        metric: f.metric,
        tag: f.tag,
        error: f.message,
      });
    }
  }

  /** Every family in exposition order, the self metrics refreshed from the counts first. */
  families(): readonly Family[] {
    const { istio, custom, limits, budget: b } = this.sources;
    for (const f of istio) {
      (this.overflowFam.get(`metric="${f.name}"`, 0) as ScalarSeries).value = f.overflowCount;
      (this.expiredFam.get(`metric="${f.name}"`, 0) as ScalarSeries).value = f.expiredCount;
      (this.activeFam.get(`metric="${f.name}"`, 0) as ScalarSeries).value = f.series.size + (f.overflowSeries ? 1 : 0);
    }
    for (const [label, n] of limits.rejected) (this.rejectedFam.get(`label="${escapeLabelValue(label)}"`, 0) as ScalarSeries).value = n;
    for (const [label, n] of limits.truncated) (this.truncatedFam.get(`label="${escapeLabelValue(label)}"`, 0) as ScalarSeries).value = n;
    (this.budgetRefusedFam.get('budget="exposition"', 0) as ScalarSeries).value = b.refused;
    (this.budgetRefusedFam.get('budget="plain_text"', 0) as ScalarSeries).value = b.plainTextRefused;
    (this.budgetUsedFam.get('budget="exposition"', 0) as ScalarSeries).value = b.used;
    (this.budgetUsedFam.get('budget="plain_text"', 0) as ScalarSeries).value = b.plainTextUsed;
    (this.errorsFam.get('', 0) as ScalarSeries).value = this.sources.errors();
    return [
      ...istio,
      ...custom.map((c) => c.family),
      this.build,
      this.peerUnknown,
      this.overflowFam,
      this.rejectedFam,
      this.truncatedFam,
      this.expiredFam,
      this.activeFam,
      this.errorsFam,
      this.exprErrorsFam,
      this.budgetRefusedFam,
      this.budgetUsedFam,
      this.budgetLimitFam,
    ];
  }
}
