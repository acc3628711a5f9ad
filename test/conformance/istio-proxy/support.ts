/**
 * Helpers of the istio/proxy conformance suite: fixtures (resolved upstream test data, checked in with path, branch
 * and commit), Istio node metadata → WorkloadMetadata, and a comparison that works like the Go driver's
 * `driver.ExactStat` (test/envoye2e/driver/stats.go): the same series, the same labels in the same order, the same value.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { parseExposition } from '../../../src/stats/exposition-parser.js';
import { inputFromObject } from '../../../src/cli/encode.js';
import { createWorkloadMetadata } from '../../../src/index.js';
import type { WorkloadMetadata } from '../../../src/index.js';

/** A Prometheus metric family as istio/proxy's testdata/metric/*.yaml writes it (io.prometheus.client.MetricFamily). */
export interface MetricFamily {
  readonly name: string;
  readonly type: string;
  readonly metric: ReadonlyArray<{
    readonly counter?: { readonly value: number };
    readonly gauge?: { readonly value: number };
    readonly label: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  }>;
}

/** Read a fixture of this suite. */
export function fixture<T>(name: string): T {
  return JSON.parse(readFileSync(fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url)), 'utf8')) as T;
}

/** Workload metadata from Istio node metadata (NAME, LABELS, OWNER, ...), the keys `meshtel encode -f` accepts. */
export function fromNodeMetadata(node: Record<string, unknown>): WorkloadMetadata {
  const input = inputFromObject(node, 'node metadata');
  // pilot-agent drops pod-template-hash from LABELS before Envoy sees it (istio/istio pkg/bootstrap/config.go).
  const labels = { ...(input.labels ?? {}) };
  delete labels['pod-template-hash'];
  return createWorkloadMetadata({ ...input, labels });
}

/**
 * Assert the exposition holds exactly the series of `family` (driver.ExactStat): for each expected metric the one
 * series of that name with the same label names in the same order and the same values, and the same value; and no
 * other series of that name.
 */
export function expectExactStat(exposition: string, family: MetricFamily): void {
  const samples = parseExposition(exposition).filter((s) => s.name === family.name);
  const got = samples.map((s) => ({ labels: Object.entries(s.labels), value: s.value }));
  const want = family.metric.map((m) => ({
    labels: m.label.map((l) => [l.name, String(l.value)] as [string, string]),
    value: (m.counter ?? m.gauge)!.value,
  }));
  expect(got).toEqual(want);
}
