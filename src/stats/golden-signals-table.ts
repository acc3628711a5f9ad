/**
 * Plain-text tables for the CLI (`meshtel stat`, `meshtel lint`): left-aligned columns, two spaces
 * apart, no colours, so the output is the same on a TTY, in a pipe and in a test.
 */
import type { StatResource, StatRow } from './golden-signals.js';

/** Render rows of cells as aligned columns; the first row is the header. */
export function renderColumns(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd())
    .join('\n');
}

/** `98.50%`, or `-` without traffic. */
export function formatPercent(v: number | null): string {
  return v === null ? '-' : `${(v * 100).toFixed(2)}%`;
}

/** `12.3rps`. */
export function formatRps(v: number): string {
  return `${v.toFixed(1)}rps`;
}

/** Milliseconds, one decimal below 10 ms (interpolated quantiles are rarely whole), `-` without traffic. */
export function formatMs(v: number | null): string {
  if (v === null) return '-';
  return v < 10 ? `${v.toFixed(1)}ms` : `${Math.round(v)}ms`;
}

/**
 * The `meshtel stat` table; `wide` adds request and failure counts and the reporter. `latencyNote`, when given, is
 * printed in place of every latency quantile (the demo's first minute, when they still measure start-up).
 */
export function renderStatTable(rows: readonly StatRow[], resource: StatResource, wide = false, latencyNote?: string): string {
  const head =
    resource === 'edge'
      ? ['SRC_NAMESPACE', 'SRC', 'DST_NAMESPACE', 'DST']
      : ['NAMESPACE', resource === 'service' ? 'SERVICE' : 'WORKLOAD'];
  head.push('SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99', 'TCP_CONN');
  if (wide) head.push('REQUESTS', 'FAILURES', 'REPORTER');
  const body = rows.map((r) => {
    const cells =
      resource === 'edge' ? [r.sourceNamespace ?? '', r.source ?? '', r.namespace, r.name] : [r.namespace, r.name];
    cells.push(
      formatPercent(r.successRate),
      formatRps(r.rps),
      ...(latencyNote !== undefined && r.requests > 0 ? [latencyNote, latencyNote, latencyNote] : [formatMs(r.p50), formatMs(r.p95), formatMs(r.p99)]),
      r.tcpConnections === null ? '-' : String(r.tcpConnections),
    );
    if (wide) cells.push(String(Math.round(r.requests)), String(Math.round(r.failures)), r.reporter);
    return cells;
  });
  if (body.length === 0) return `${renderColumns([head])}\n(no istio_* series found)`;
  return renderColumns([head, ...body]);
}
