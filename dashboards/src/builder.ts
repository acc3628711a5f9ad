/**
 * A small typed builder for Grafana 10+ dashboard JSON models.
 *
 * Why hand-written instead of `@grafana/grafana-foundation-sdk`: we need four dashboards that use three panel
 * types and three variable kinds; the few dozen lines here keep the output byte-stable (the committed JSON is
 * checked for freshness, STYLE.md §11) and add no dependency. Field names follow Grafana's dashboard JSON model
 * (grafana/grafana `kinds/dashboard/dashboard_kind.cue`, schemaVersion 39 = Grafana 10.4/11.0).
 */

/** The dashboard JSON schema version we emit (Grafana 10.4 and 11.x write 39, as Istio's mesh dashboard does). */
export const SCHEMA_VERSION = 39;

/** Name of the datasource template variable every panel and query variable points at. */
export const DATASOURCE_VARIABLE = 'datasource';

/** The datasource reference used by every panel, target and query variable: the `${datasource}` variable. */
export const DATASOURCE_REF = Object.freeze({ type: 'prometheus', uid: '${' + DATASOURCE_VARIABLE + '}' });

/** Grafana's own variables: always defined, never declared in `templating.list`. */
export const BUILTIN_VARIABLES: ReadonlySet<string> = new Set([
  '__rate_interval',
  '__interval',
  '__interval_ms',
  '__range',
  '__range_s',
  '__range_ms',
  '__from',
  '__to',
  '__dashboard',
  '__name',
  '__all',
]);

/** Width of Grafana's grid. */
export const GRID_WIDTH = 24;

/** One PromQL query of a panel. */
export interface TargetOptions {
  /** The PromQL expression; may reference template variables as `$name`. */
  expr: string;
  /** Grafana legend template, e.g. `{{destination_workload}}`. */
  legend?: string;
  /** Evaluate at the end of the range only (tables and stats). */
  instant?: boolean;
  /** `table` for table panels that join several queries by label. */
  format?: 'time_series' | 'table';
}

/** The panel types the builder knows. */
export type PanelType = 'timeseries' | 'stat' | 'table';

/** A panel inside a row. */
export interface PanelOptions {
  title: string;
  description: string;
  type: PanelType;
  targets: readonly TargetOptions[];
  /** Grafana unit id: `reqps`, `percentunit`, `ms`, `s`, `bytes`, `Bps`, `cps`, `ops`, `short`... */
  unit?: string;
  /** Width in grid columns (1–24); defaults to 12. */
  width?: number;
  /** Height in grid rows; defaults to 8 (4 for stats). */
  height?: number;
  decimals?: number;
  min?: number;
  max?: number;
}

/** A row: a titled group of panels laid out left to right, wrapping at 24 columns. */
export interface RowOptions {
  title: string;
  panels: readonly PanelOptions[];
}

/** The datasource picker variable, always first. */
export interface DatasourceVariableOptions {
  kind: 'datasource';
}

/** A variable filled by a Prometheus query (`label_values(...)` or `query_result(...)`). */
export interface QueryVariableOptions {
  kind: 'query';
  name: string;
  label: string;
  /** Grafana Prometheus variable query, e.g. `label_values(istio_requests_total, destination_service)`. */
  query: string;
  /** Grafana regex applied to each result (`/.../`); its first capture group becomes the value. */
  regex?: string;
  multi?: boolean;
  /** Adds "All"; with `allValue` `.*` so that `label=~"$var"` matches every value. */
  includeAll?: boolean;
}

/** A variable with a fixed list of values. */
export interface CustomVariableOptions {
  kind: 'custom';
  name: string;
  label: string;
  values: readonly string[];
  /** Values selected by default (a subset of `values`). */
  selected: readonly string[];
  multi?: boolean;
}

/** Any variable the builder can declare. */
export type VariableOptions = DatasourceVariableOptions | QueryVariableOptions | CustomVariableOptions;

/** Everything needed to build one dashboard. */
export interface DashboardOptions {
  /** Stable UID (≤ 40 characters) so links and provisioning survive regeneration. */
  uid: string;
  title: string;
  description: string;
  tags: readonly string[];
  /** In order: a variable may only reference variables declared before it. */
  variables: readonly VariableOptions[];
  rows: readonly RowOptions[];
  /** UIDs of dashboards to link to (with the current variables and time range). */
  links?: readonly { title: string; uid: string }[];
}

/** A JSON value as emitted. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** The emitted dashboard model (plain JSON). */
export type GrafanaDashboard = { [key: string]: Json };

const REF_IDS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

function buildTarget(t: TargetOptions, index: number): Json {
  const refId = REF_IDS[index];
  if (refId === undefined) throw new RangeError(`a panel may have at most ${REF_IDS.length} targets`);
  return {
    datasource: { ...DATASOURCE_REF },
    editorMode: 'code',
    expr: t.expr,
    format: t.format ?? 'time_series',
    instant: t.instant === true,
    legendFormat: t.legend ?? '__auto',
    range: t.instant !== true,
    refId,
  };
}

function fieldDefaults(p: PanelOptions): { [key: string]: Json } {
  const defaults: { [key: string]: Json } = { unit: p.unit ?? 'short' };
  if (p.decimals !== undefined) defaults.decimals = p.decimals;
  if (p.min !== undefined) defaults.min = p.min;
  if (p.max !== undefined) defaults.max = p.max;
  if (p.type === 'timeseries') {
    defaults.custom = { drawStyle: 'line', fillOpacity: 10, lineWidth: 1, showPoints: 'never', spanNulls: false };
  }
  return defaults;
}

function panelOptions(type: PanelType): { [key: string]: Json } {
  switch (type) {
    case 'timeseries':
      return {
        legend: { calcs: ['mean', 'max', 'lastNotNull'], displayMode: 'table', placement: 'bottom', showLegend: true },
        tooltip: { mode: 'multi', sort: 'desc' },
      };
    case 'stat':
      return {
        colorMode: 'value',
        graphMode: 'area',
        justifyMode: 'auto',
        orientation: 'auto',
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        textMode: 'auto',
      };
    case 'table':
      return { cellHeight: 'sm', showHeader: true, footer: { show: false, reducer: ['sum'], countRows: false } };
  }
}

function buildVariable(v: VariableOptions): Json {
  switch (v.kind) {
    case 'datasource':
      return {
        current: {},
        hide: 0,
        includeAll: false,
        label: 'Data source',
        multi: false,
        name: DATASOURCE_VARIABLE,
        options: [],
        query: 'prometheus',
        refresh: 1,
        regex: '',
        skipUrlSync: false,
        type: 'datasource',
      };
    case 'query':
      return {
        current: {},
        datasource: { ...DATASOURCE_REF },
        definition: v.query,
        hide: 0,
        includeAll: v.includeAll === true,
        ...(v.includeAll === true ? { allValue: '.*' } : {}),
        label: v.label,
        multi: v.multi === true,
        name: v.name,
        options: [],
        query: { query: v.query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
        // 2 = refresh on time-range change, so the pickers follow the workloads that currently exist.
        refresh: 2,
        regex: v.regex ?? '',
        skipUrlSync: false,
        sort: 1,
        type: 'query',
      };
    case 'custom': {
      const text = v.selected.join(' + ');
      return {
        current: { selected: true, text: v.multi === true ? [...v.selected] : text, value: [...v.selected] },
        hide: 0,
        includeAll: false,
        label: v.label,
        multi: v.multi === true,
        name: v.name,
        options: v.values.map((value) => ({ selected: v.selected.includes(value), text: value, value })),
        query: v.values.join(','),
        skipUrlSync: false,
        type: 'custom',
      };
    }
  }
}

/**
 * Build a dashboard JSON model. Panel ids are assigned 1, 2, 3... in reading order and grid positions are
 * computed from widths, so the output depends only on the options (regeneration is byte-stable).
 */
export function createDashboard(o: DashboardOptions): GrafanaDashboard {
  if (o.uid.length === 0 || o.uid.length > 40) throw new RangeError(`dashboard uid must be 1-40 characters: ${o.uid}`);
  const panels: Json[] = [];
  let id = 0;
  let y = 0;
  for (const row of o.rows) {
    id += 1;
    panels.push({
      collapsed: false,
      gridPos: { h: 1, w: GRID_WIDTH, x: 0, y },
      id,
      panels: [],
      title: row.title,
      type: 'row',
    });
    y += 1;
    let x = 0;
    let rowHeight = 0;
    for (const p of row.panels) {
      const w = p.width ?? 12;
      const h = p.height ?? (p.type === 'stat' ? 4 : 8);
      if (w < 1 || w > GRID_WIDTH) throw new RangeError(`panel width must be 1-${GRID_WIDTH}: ${p.title}`);
      if (x + w > GRID_WIDTH) {
        y += rowHeight;
        x = 0;
        rowHeight = 0;
      }
      id += 1;
      panels.push({
        datasource: { ...DATASOURCE_REF },
        description: p.description,
        fieldConfig: { defaults: fieldDefaults(p), overrides: [] },
        gridPos: { h, w, x, y },
        id,
        options: panelOptions(p.type),
        targets: p.targets.map(buildTarget),
        title: p.title,
        type: p.type,
      });
      x += w;
      rowHeight = Math.max(rowHeight, h);
    }
    y += rowHeight;
  }
  return {
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
      ],
    },
    description: o.description,
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    links: (o.links ?? []).map((l) => ({
      asDropdown: false,
      icon: 'dashboard',
      includeVars: false,
      keepTime: true,
      targetBlank: false,
      title: l.title,
      type: 'link',
      url: `/d/${l.uid}`,
    })),
    panels,
    refresh: '30s',
    schemaVersion: SCHEMA_VERSION,
    tags: [...o.tags],
    templating: { list: o.variables.map(buildVariable) },
    time: { from: 'now-30m', to: 'now' },
    timepicker: {},
    timezone: 'utc',
    title: o.title,
    uid: o.uid,
    version: 1,
    weekStart: '',
  };
}
