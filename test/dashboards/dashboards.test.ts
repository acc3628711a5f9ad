import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { SCHEMA_VERSION, createDashboard } from '../../dashboards/src/builder.js';
import { DASHBOARDS_DIR, createAllDashboards, renderDashboard } from '../../dashboards/src/generate.js';
import { DASHBOARD_UIDS } from '../../dashboards/src/uids.js';
import type { GrafanaModel } from './grafana-model.js';
import {
  BUILTIN_VALUES,
  checkDashboard,
  collectQueries,
  flattenPanels,
  planVariableQuery,
  referencedVariables,
  substituteVariables,
} from './grafana-model.js';
import { findBinary, requireBinary } from '../deploy/binaries.js';

const PROMTOOL = findBinary('promtool') ?? 'promtool';

/** promtool is required under CI; elsewhere its tests are skipped with a message. */
function hasPromtool(): boolean {
  return requireBinary('promtool') !== undefined;
}

const dashboards = [...createAllDashboards()].map(([file, d]) => ({ file, model: d as unknown as GrafanaModel }));

/** Syntax-check values: every variable gets a value that keeps the expression valid PromQL. */
function syntaxValues(model: GrafanaModel): Record<string, string> {
  const values: Record<string, string> = { ...BUILTIN_VALUES };
  for (const v of model.templating.list) values[v.name] = v.type === 'custom' ? (v.options ?? []).map((o) => o.value).join('|') : 'x';
  return values;
}

describe('dashboards', () => {
  it('has one dashboard per stable UID, with unique titles', () => {
    expect(dashboards.map((d) => d.model.uid).sort()).toEqual(Object.values(DASHBOARD_UIDS).sort());
    expect(new Set(dashboards.map((d) => d.model.title)).size).toBe(dashboards.length);
  });

  describe.each(dashboards)('$file', ({ file, model }) => {
    it('is a Grafana 10+ model (current schemaVersion, uid of at most 40 characters)', () => {
      expect(model.schemaVersion).toBe(SCHEMA_VERSION);
      expect(model.schemaVersion).toBeGreaterThanOrEqual(39);
      expect(model.uid).toMatch(/^[a-z0-9-]{1,40}$/);
      expect(file).toBe(`${model.uid}.json`);
    });

    it('declares the datasource as its first template variable and every panel and target uses it', () => {
      expect(model.templating.list[0]).toMatchObject({ name: 'datasource', type: 'datasource', query: 'prometheus' });
      for (const p of flattenPanels(model).filter((p) => p.type !== 'row')) {
        expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
        for (const t of p.targets ?? []) expect(t.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      }
    });

    it('has unique panel ids, a query in every panel, no overlap, and only variables defined before use', () => {
      expect(checkDashboard(model)).toEqual([]);
    });

    it('is committed up to date with its TypeScript source (run `npm run dashboards`)', () => {
      const committed = readFileSync(path.join(DASHBOARDS_DIR, file), 'utf8');
      expect(committed).toBe(renderDashboard(model as never));
    });

    it('uses only PromQL that Prometheus 2.42 parses (promtool check rules)', (ctx) => {
      if (!hasPromtool()) return ctx.skip();
      const values = syntaxValues(model);
      const exprs = collectQueries(model).map((q) => {
        if (q.kind === 'panel') return substituteVariables(q.expr, values);
        const plan = planVariableQuery(q.expr);
        if (plan.kind === 'other') throw new Error(`variable ${q.where}: unsupported query ${q.expr}`);
        if (plan.kind === 'query_result') return substituteVariables(plan.promql, values);
        return substituteVariables(plan.selector ?? 'up', values);
      });
      const dir = mkdtempSync(path.join(tmpdir(), 'meshtel-dash-'));
      try {
        const rules = { groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:q${i}`, expr })) }] };
        const file = path.join(dir, 'rules.yaml');
        writeFileSync(file, stringify(rules));
        const out = execFileSync(PROMTOOL, ['check', 'rules', file], { encoding: 'utf8' });
        expect(out).toContain(`SUCCESS: ${exprs.length} rules found`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});

describe('checkDashboard()', () => {
  const base = (): GrafanaModel =>
    createDashboard({
      uid: 'check',
      title: 'check',
      description: 'check',
      tags: [],
      variables: [
        { kind: 'datasource' },
        { kind: 'query', name: 'ns', label: 'ns', query: 'label_values(up, namespace)' },
      ],
      rows: [{ title: 'r', panels: [{ title: 'p', description: 'd', type: 'stat', targets: [{ expr: 'up{namespace="$ns"}' }] }] }],
    }) as unknown as GrafanaModel;

  it('accepts a well-formed dashboard', () => {
    expect(checkDashboard(base())).toEqual([]);
  });

  it.each([
    [
      'a variable used before it is defined',
      (m: GrafanaModel) => {
        m.templating.list.splice(1, 0, { name: 'pod', type: 'query', query: { query: 'label_values(up{namespace="$ns"}, pod)' } });
      },
      'variable pod (#1) uses $ns before it is defined',
    ],
    [
      'a panel without a query',
      (m: GrafanaModel) => {
        const p = m.panels[1];
        if (p?.targets?.[0] !== undefined) p.targets[0].expr = '';
      },
      'panel "p" has no query',
    ],
    [
      'a reused panel id',
      (m: GrafanaModel) => {
        const p = m.panels[1];
        if (p !== undefined) p.id = 1;
      },
      'panel "p" reuses id 1',
    ],
    [
      'an undefined variable in a panel',
      (m: GrafanaModel) => {
        const t = m.panels[1]?.targets?.[0];
        if (t !== undefined) t.expr = 'up{namespace="$ns", pod="${pod}"}';
      },
      'panel "p" uses undefined variable $pod',
    ],
    [
      'overlapping panels',
      (m: GrafanaModel) => {
        const p = m.panels[1];
        if (p?.gridPos !== undefined) p.gridPos.y = 0;
      },
      'panel "p" overlaps panel "r"',
    ],
    [
      'an unused variable',
      (m: GrafanaModel) => {
        m.templating.list.push({ name: 'idle', type: 'custom', query: 'a,b' });
      },
      'variable idle is never used',
    ],
  ])('reports %s', (_name, breakIt, problem) => {
    const m = base();
    breakIt(m);
    expect(checkDashboard(m)).toContain(problem);
  });
});

describe('grafana-model', () => {
  describe('referencedVariables()', () => {
    it.each([
      ['rate(x{a="$a"}[$__rate_interval])', ['a']],
      ['x{a=~"${a}", b="${b:regex}", c="[[c]]"}', ['a', 'b', 'c']],
      ['sum(x)', []],
    ])('finds the variables of %s', (expr, names) => {
      expect(referencedVariables(expr)).toEqual(names);
    });
  });

  describe('substituteVariables()', () => {
    it('replaces user and built-in variables', () => {
      expect(substituteVariables('rate(x{a=~"$a"}[$__rate_interval])', { ...BUILTIN_VALUES, a: 'v1|v2' })).toBe(
        'rate(x{a=~"v1|v2"}[1m])',
      );
    });
    it('throws for a variable without a value', () => {
      expect(() => substituteVariables('x{a="$a"}', {})).toThrow('no value for variable $a');
    });
  });

  describe('planVariableQuery()', () => {
    it.each([
      ['query_result(sum(x) by (a))', { kind: 'query_result', promql: 'sum(x) by (a)' }],
      ['label_values(x{a="1", b=~"2|3"}, c)', { kind: 'label_values', selector: 'x{a="1", b=~"2|3"}', label: 'c' }],
      ['label_values(c)', { kind: 'label_values', selector: undefined, label: 'c' }],
      ['metrics(istio_.*)', { kind: 'other', text: 'metrics(istio_.*)' }],
    ])('splits %s', (query, plan) => {
      expect(planVariableQuery(query)).toEqual(plan);
    });
  });
});

describe('createDashboard()', () => {
  const panel = (width: number) => ({ title: `w${width}`, description: 'd', type: 'stat' as const, width, targets: [{ expr: 'up' }] });

  it('wraps panels to a new line when a row is full', () => {
    const d = createDashboard({
      uid: 'wrap',
      title: 'wrap',
      description: 'd',
      tags: [],
      variables: [{ kind: 'datasource' }],
      rows: [{ title: 'r', panels: [panel(16), panel(16)] }],
    }) as unknown as GrafanaModel;
    expect(d.panels.map((p) => p.gridPos)).toEqual([
      { h: 1, w: 24, x: 0, y: 0 },
      { h: 4, w: 16, x: 0, y: 1 },
      { h: 4, w: 16, x: 0, y: 5 },
    ]);
  });

  it.each([
    ['a panel wider than the grid', { uid: 'x', rows: [{ title: 'r', panels: [panel(25)] }] }, 'panel width must be 1-24'],
    ['an empty uid', { uid: '', rows: [] }, 'dashboard uid must be 1-40 characters'],
    ['a uid longer than 40 characters', { uid: 'x'.repeat(41), rows: [] }, 'dashboard uid must be 1-40 characters'],
  ])('rejects %s', (_name, o, message) => {
    expect(() => createDashboard({ title: 't', description: 'd', tags: [], variables: [], ...o })).toThrow(message);
  });
});
