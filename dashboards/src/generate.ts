/**
 * Renders every dashboard to its committed JSON file. `npm run dashboards` writes them; the freshness test
 * (test/dashboards) renders them in memory and compares with the files on disk.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GrafanaDashboard } from './builder.js';
import { createMeshDashboard } from './mesh.js';
import { createMeshtelDashboard } from './meshtel.js';
import { createServiceDashboard } from './service.js';
import { createWorkloadDashboard } from './workload.js';

/** Folder the JSON files are written to (`dashboards/`). */
export const DASHBOARDS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Every dashboard, keyed by its file name in `dashboards/`. */
export function createAllDashboards(): ReadonlyMap<string, GrafanaDashboard> {
  return new Map([
    ['meshtel-mesh.json', createMeshDashboard()],
    ['meshtel-service.json', createServiceDashboard()],
    ['meshtel-workload.json', createWorkloadDashboard()],
    ['meshtel-sidecar.json', createMeshtelDashboard()],
  ]);
}

/** The exact text committed for a dashboard: 2-space JSON and a final newline. */
export function renderDashboard(d: GrafanaDashboard): string {
  return JSON.stringify(d, null, 2) + '\n';
}

/** Write every dashboard file; returns the paths written. */
export function writeDashboards(dir: string = DASHBOARDS_DIR): string[] {
  const written: string[] = [];
  for (const [file, d] of createAllDashboards()) {
    const target = path.join(dir, file);
    writeFileSync(target, renderDashboard(d));
    written.push(target);
  }
  return written;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const file of writeDashboards()) process.stdout.write(`wrote ${path.relative(process.cwd(), file)}\n`);
}
