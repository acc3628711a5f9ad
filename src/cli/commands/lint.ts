/**
 * `meshtel lint telemetry.yaml`: validate Telemetry resources and print the resulting metrics and
 * label sets per mode (src/cli/lint.ts).
 */
import type { Command } from 'commander';
import { ConfigError, quote } from '../../core/errors.js';
import { lintTelemetry } from '../lint.js';
import { readInput } from '../io.js';
import { renderColumns } from '../../stats/golden-signals-table.js';

/** `standard (25)` when untouched, else the count and the difference from the standard tags, in order. */
function describeLabels(labels: readonly string[], standard: readonly string[]): string {
  const removed = standard.filter((l) => !labels.includes(l));
  const added = labels.filter((l) => !standard.includes(l));
  if (removed.length === 0 && added.length === 0) return `standard (${labels.length})`;
  return `${labels.length}: standard ${[...removed.map((l) => `-${l}`), ...added.map((l) => `+${l}`)].join(' ')}`;
}

/** Register `meshtel lint`. */
export function registerLintCommand(program: Command): void {
  program
    .command('lint')
    .description('validate Telemetry resources (telemetry.istio.io/v1) and print the resulting metrics and labels per mode')
    .argument('<file>', 'Telemetry YAML (one or more documents); "-" reads stdin')
    .option('-o, --output <format>', 'table | json', 'table')
    .addHelpText(
      'after',
      `
Errors name the field (e.g. spec.metrics[0].overrides[1].match.mode) and exit 1 with
MESHTEL_ERR_INVALID_TELEMETRY or MESHTEL_ERR_INVALID_EXPRESSION. Label sets are read from a stats
recorder running the configuration, so they are exactly what the sidecar emits.

Examples:
  $ meshtel lint telemetry.yaml
  $ kubectl get telemetry -A -o yaml | yq '.items[]' -y | meshtel lint -
  $ meshtel lint telemetry.yaml -o json | jq '.metrics[] | select(.mode=="SERVER")'`,
    )
    .action(async (file: string, flags: { output: string }) => {
      if (flags.output !== 'table' && flags.output !== 'json') {
        throw new ConfigError('MESHTEL_ERR_CLI_USAGE', `-o must be table or json, got ${quote(flags.output)}`, { field: 'output' });
      }
      const text = await readInput(file);
      const result = await lintTelemetry(text);
      if (flags.output === 'json') {
        process.stdout.write(`${JSON.stringify({ valid: true, overrides: result.config.overrides.length, warnings: result.warnings, metrics: result.metrics }, null, 2)}\n`);
        return;
      }
      const lines: string[] = [`${file}: valid, ${result.config.overrides.length} override(s)`, ...result.warnings];
      for (const mode of ['CLIENT', 'SERVER'] as const) {
        lines.push('', mode === 'CLIENT' ? 'CLIENT (reporter=source: outbound sidecars and gateways)' : 'SERVER (reporter=destination: inbound sidecars)');
        const rows: string[][] = [['METRIC', 'STATE', 'LABELS']];
        for (const m of result.metrics.filter((x) => x.mode === mode)) {
          const changes = [
            ...m.removed.map((t) => `-${t}`),
            ...Object.entries(m.expressions).map(([t, e]) => `${t}=${e}`),
          ];
          rows.push([m.metric, m.enabled ? 'on' : 'disabled', m.enabled ? describeLabels(m.labels, m.standard) : '-']);
          if (m.enabled && changes.length > 0) rows.push(['', '', `overrides: ${changes.join('  ')}`]);
        }
        lines.push(renderColumns(rows));
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
