/**
 * Reading Grafana dashboard JSON models the way Grafana does, for the structure tests here and the real-Prometheus
 * e2e suite: flatten panels (rows may nest them), list every query (panel targets and query variables), find the
 * variables an expression references and substitute them, and split a variable query into the PromQL Prometheus
 * can evaluate (`query_result(...)` and `label_values(...)` are Grafana functions, not PromQL).
 */
import { BUILTIN_VARIABLES, GRID_WIDTH } from '../../dashboards/src/builder.js';

/** A panel as found in dashboard JSON (only the fields we read). */
export interface GrafanaPanel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: unknown;
  gridPos?: { x: number; y: number; w: number; h: number };
  targets?: { expr?: string; refId?: string; hide?: boolean; datasource?: unknown }[];
  panels?: GrafanaPanel[];
}

/** A template variable as found in dashboard JSON. */
export interface GrafanaVariable {
  name: string;
  type: string;
  query?: string | { query?: string };
  regex?: string;
  allValue?: string | null;
  includeAll?: boolean;
  options?: { value: string; selected?: boolean }[];
  current?: { value?: string | string[] };
}

/** The parts of a dashboard we read. */
export interface GrafanaModel {
  uid?: string | null;
  title: string;
  schemaVersion: number;
  panels: GrafanaPanel[];
  templating: { list: GrafanaVariable[] };
}

/** One PromQL query found in a dashboard. */
export interface DashboardQuery {
  /** `panel` target or `variable` query. */
  kind: 'panel' | 'variable';
  /** Panel title and refId, or variable name. */
  where: string;
  /** The expression as written (Grafana syntax, variables unsubstituted). */
  expr: string;
}

/** Every panel, rows flattened (a collapsed row keeps its panels inside `panels`). */
export function flattenPanels(model: GrafanaModel): GrafanaPanel[] {
  const out: GrafanaPanel[] = [];
  for (const p of model.panels) {
    out.push(p);
    if (p.panels !== undefined) out.push(...p.panels);
  }
  return out;
}

/** The query string of a variable (Grafana stores it as a string or as `{query}`). */
export function variableQuery(v: GrafanaVariable): string {
  if (typeof v.query === 'string') return v.query;
  return v.query?.query ?? '';
}

/** Every panel target expression and query-variable query of a dashboard. */
export function collectQueries(model: GrafanaModel): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  for (const v of model.templating.list) {
    if (v.type === 'query') out.push({ kind: 'variable', where: v.name, expr: variableQuery(v) });
  }
  for (const p of flattenPanels(model)) {
    for (const t of p.targets ?? []) {
      if (t.hide === true || t.expr === undefined || t.expr.trim() === '') continue;
      out.push({ kind: 'panel', where: `${p.title ?? '?'} [${t.refId ?? '?'}]`, expr: t.expr });
    }
  }
  return out;
}

// Grafana's variable syntaxes: $name, ${name}, ${name:format}, [[name]] (grafana `public/app/features/variables/utils.ts`).
const VARIABLE_RE = /\$(\w+)|\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]/g;

/** Names of the variables an expression references (Grafana built-ins excluded). */
export function referencedVariables(expr: string): string[] {
  const names = new Set<string>();
  for (const m of expr.matchAll(VARIABLE_RE)) {
    const name = m[1] ?? m[2] ?? m[3];
    if (name !== undefined && !BUILTIN_VARIABLES.has(name)) names.add(name);
  }
  return [...names];
}

/** Replace every variable reference using `values` (built-ins included); unknown names are an error. */
export function substituteVariables(expr: string, values: Readonly<Record<string, string>>): string {
  return expr.replace(VARIABLE_RE, (whole, a?: string, b?: string, c?: string) => {
    const name = a ?? b ?? c ?? '';
    const value = values[name];
    if (value === undefined) throw new Error(`no value for variable $${name} in ${expr}`);
    return value;
  });
}

/** Values for Grafana's built-in interval variables, suitable for a Prometheus that scrapes every few seconds. */
export const BUILTIN_VALUES: Readonly<Record<string, string>> = Object.freeze({
  __rate_interval: '1m',
  __interval: '15s',
  __interval_ms: '15000',
  __range: '5m',
  __range_s: '300',
  __range_ms: '300000',
});

/** What Prometheus must evaluate for a variable query. */
export type VariableQueryPlan =
  | { kind: 'query_result'; promql: string }
  | { kind: 'label_values'; selector: string | undefined; label: string }
  | { kind: 'other'; text: string };

/** Split a Grafana Prometheus variable query into what Prometheus evaluates. */
export function planVariableQuery(query: string): VariableQueryPlan {
  const q = query.trim();
  const qr = /^query_result\(([\s\S]*)\)$/.exec(q);
  if (qr?.[1] !== undefined) return { kind: 'query_result', promql: qr[1].trim() };
  const lv = /^label_values\(([\s\S]*)\)$/.exec(q);
  if (lv?.[1] !== undefined) {
    const inner = lv[1];
    const comma = inner.lastIndexOf(',');
    if (comma === -1) return { kind: 'label_values', selector: undefined, label: inner.trim() };
    return { kind: 'label_values', selector: inner.slice(0, comma).trim(), label: inner.slice(comma + 1).trim() };
  }
  return { kind: 'other', text: q };
}

/** Structural problems of a dashboard, as readable strings (empty when the dashboard is well formed). */
export function checkDashboard(model: GrafanaModel): string[] {
  const problems: string[] = [];
  const vars = model.templating.list;
  const declared = new Set<string>();
  const used = new Set<string>();
  vars.forEach((v, i) => {
    if (declared.has(v.name)) problems.push(`variable ${v.name} declared twice`);
    if (v.type === 'query') {
      for (const ref of referencedVariables(variableQuery(v))) {
        used.add(ref);
        if (!declared.has(ref)) problems.push(`variable ${v.name} (#${i}) uses $${ref} before it is defined`);
      }
      if (variableQuery(v).trim() === '') problems.push(`variable ${v.name} has no query`);
    }
    declared.add(v.name);
  });
  const ids = new Set<number>();
  const cells = new Map<string, string>();
  for (const p of flattenPanels(model)) {
    const name = `panel "${p.title ?? '?'}"`;
    if (typeof p.id !== 'number') problems.push(`${name} has no numeric id`);
    else if (ids.has(p.id)) problems.push(`${name} reuses id ${p.id}`);
    else ids.add(p.id);
    if (typeof p.type !== 'string' || p.type === '') problems.push(`${name} has no type`);
    const g = p.gridPos;
    if (g === undefined) problems.push(`${name} has no gridPos`);
    else {
      if (g.x < 0 || g.w < 1 || g.x + g.w > GRID_WIDTH || g.h < 1 || g.y < 0) problems.push(`${name} lies outside the grid`);
      for (let x = g.x; x < g.x + g.w; x += 1) {
        for (let y = g.y; y < g.y + g.h; y += 1) {
          const other = cells.get(`${x},${y}`);
          if (other !== undefined) problems.push(`${name} overlaps ${other}`);
          cells.set(`${x},${y}`, name);
        }
      }
    }
    if (p.type === 'row') continue;
    const targets = p.targets ?? [];
    if (!targets.some((t) => typeof t.expr === 'string' && t.expr.trim() !== '')) problems.push(`${name} has no query`);
    const refIds = targets.map((t) => t.refId);
    if (new Set(refIds).size !== refIds.length) problems.push(`${name} repeats a refId`);
    for (const t of targets) {
      for (const ref of referencedVariables(t.expr ?? '')) {
        used.add(ref);
        if (!declared.has(ref)) problems.push(`${name} uses undefined variable $${ref}`);
      }
    }
    for (const ds of [p.datasource, ...targets.map((t) => t.datasource)]) {
      for (const ref of referencedVariables(JSON.stringify(ds ?? ''))) {
        used.add(ref);
        if (!declared.has(ref)) problems.push(`${name} uses undefined datasource variable $${ref}`);
      }
    }
  }
  for (const name of declared) if (!used.has(name)) problems.push(`variable ${name} is never used`);
  return [...new Set(problems)];
}
