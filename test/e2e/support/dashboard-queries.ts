/**
 * Evaluates every query of a Grafana dashboard against a real Prometheus, the way Grafana would: template
 * variables are resolved in order through the Prometheus API (`label_values` → label-values endpoint,
 * `query_result` → instant query, text rendered as Grafana renders it, then the variable's regex), and each
 * panel target is run with the variables substituted. A variable without "All" is tried with each of its values
 * (nested in declaration order), so a TCP panel of the Service dashboard can find data on the TCP service and an
 * HTTP panel on an HTTP service; a panel passes when it parses everywhere and returns data for some assignment.
 */
import type { GrafanaModel, GrafanaVariable } from '../../dashboards/grafana-model.js';
import { BUILTIN_VALUES, collectQueries, planVariableQuery, substituteVariables, variableQuery } from '../../dashboards/grafana-model.js';
import type { PrometheusHandle, PromSample } from './prometheus.js';

/** Variable name → value as substituted into PromQL. */
export type Assignment = Readonly<Record<string, string>>;

/** Outcome of one dashboard query. */
export interface QueryOutcome {
  kind: 'panel' | 'variable';
  where: string;
  expr: string;
  /** Assignments tried. */
  tried: number;
  /** Assignments that returned at least one sample or value. */
  withData: number;
  /** Parse or evaluation errors (never expected). */
  errors: string[];
}

/** Cap on the values tried per variable, so a large mesh stays bounded. */
const MAX_VALUES_PER_VARIABLE = 12;

/** Grafana's regex escaping of multi-value and "All" values for Prometheus (inside a PromQL string). */
function regexEscape(value: string): string {
  return value.replace(/[\\^$*+?.()|[\]{}]/g, '\\\\$&');
}

/** Grafana's text for one `query_result` sample: `name{a="x", b="y"} value timestamp_ms`. */
function sampleText(s: PromSample): string {
  const { __name__: name = '', ...labels } = s.metric;
  const body = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(', ');
  return `${name}{${body}} ${s.value[1]} ${Math.round(s.value[0] * 1000)}`;
}

/** Apply a Grafana variable regex (`/pattern/flags`) the way Grafana does: first capture group, else the match. */
function applyRegex(values: string[], regex: string | undefined): string[] {
  if (regex === undefined || regex === '') return values;
  const m = /^\/(.*)\/([gimsuy]*)$/s.exec(regex);
  const re = m?.[1] !== undefined ? new RegExp(m[1], (m[2] ?? '').replace('g', '')) : new RegExp(regex);
  const out: string[] = [];
  for (const v of values) {
    const hit = re.exec(v);
    if (hit !== null) out.push(hit[1] ?? hit[0]);
  }
  return out;
}

/** Values of a query variable under an assignment of the variables before it. */
export async function variableValues(prom: PrometheusHandle, v: GrafanaVariable, assignment: Assignment): Promise<string[]> {
  const plan = planVariableQuery(substituteVariables(variableQuery(v), assignment));
  let raw: string[];
  if (plan.kind === 'query_result') raw = (await prom.query(plan.promql)).map(sampleText);
  else if (plan.kind === 'label_values') raw = await prom.labelValues(plan.label, plan.selector);
  else throw new Error(`variable ${v.name}: unsupported query ${plan.text}`);
  return [...new Set(applyRegex(raw, v.regex))].filter((x) => x !== '').sort();
}

/**
 * Every assignment of the dashboard's variables, resolved in declaration order. `prefer` moves a value to the
 * front for a variable (the most interesting service, say) so it survives the per-variable cap.
 */
export async function resolveAssignments(
  prom: PrometheusHandle,
  model: GrafanaModel,
  outcomes: Map<string, QueryOutcome>,
  prefer: Readonly<Record<string, string>> = {},
): Promise<Assignment[]> {
  let assignments: Record<string, string>[] = [{ ...BUILTIN_VALUES }];
  for (const v of model.templating.list) {
    const next: Record<string, string>[] = [];
    for (const a of assignments) {
      if (v.type === 'datasource') {
        next.push({ ...a, [v.name]: 'prometheus' });
        continue;
      }
      if (v.type === 'custom') {
        // Every option at once: Grafana renders a multi-value selection as a regex alternation.
        const opts = (v.options ?? []).map((o) => o.value);
        next.push({ ...a, [v.name]: opts.length > 1 ? `(${opts.map(regexEscape).join('|')})` : (opts[0] ?? '') });
        continue;
      }
      if (v.type !== 'query') throw new Error(`variable ${v.name}: unsupported type ${v.type}`);
      const key = `variable:${v.name}`;
      const outcome = outcomes.get(key) ?? { kind: 'variable', where: v.name, expr: variableQuery(v), tried: 0, withData: 0, errors: [] };
      outcomes.set(key, outcome);
      outcome.tried += 1;
      let values: string[] = [];
      try {
        values = await variableValues(prom, v, a);
      } catch (err) {
        outcome.errors.push((err as Error).message);
      }
      if (values.length > 0) outcome.withData += 1;
      const preferred = prefer[v.name];
      if (preferred !== undefined && values.includes(preferred)) values = [preferred, ...values.filter((x) => x !== preferred)];
      if (values.length === 0) {
        // Grafana carries on with an empty value; the variable's own outcome records the missing data.
        next.push({ ...a, [v.name]: '' });
      } else if (v.includeAll === true) {
        const all = typeof v.allValue === 'string' && v.allValue !== '' ? v.allValue : `(${values.map(regexEscape).join('|')})`;
        next.push({ ...a, [v.name]: all });
      } else {
        for (const value of values.slice(0, MAX_VALUES_PER_VARIABLE)) next.push({ ...a, [v.name]: value });
      }
    }
    assignments = next;
  }
  return assignments;
}

/** Evaluate every variable and panel query of a dashboard; returns one outcome per query. */
export async function evaluateDashboard(
  prom: PrometheusHandle,
  model: GrafanaModel,
  prefer: Readonly<Record<string, string>> = {},
): Promise<QueryOutcome[]> {
  const outcomes = new Map<string, QueryOutcome>();
  const assignments = await resolveAssignments(prom, model, outcomes, prefer);
  for (const q of collectQueries(model)) {
    if (q.kind !== 'panel') continue;
    const key = `panel:${q.where}:${q.expr}`;
    const outcome: QueryOutcome = outcomes.get(key) ?? { kind: 'panel', where: q.where, expr: q.expr, tried: 0, withData: 0, errors: [] };
    outcomes.set(key, outcome);
    for (const a of assignments) {
      outcome.tried += 1;
      try {
        const result = await prom.query(substituteVariables(q.expr, a));
        if (result.length > 0) outcome.withData += 1;
      } catch (err) {
        outcome.errors.push(`${(err as Error).message} [${JSON.stringify(a)}]`);
      }
      // One assignment with data is enough; keep evaluating only to surface parse errors, which are
      // assignment-independent, so stop early.
      if (outcome.withData > 0) break;
    }
  }
  return [...outcomes.values()];
}
