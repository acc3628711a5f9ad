/**
 * What `npm pack` ships: the compiled CLI and library, dashboards and manifests — no TypeScript sources
 * (only the .d.ts declarations the "types" field points at), no tests, no generator scripts.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/fixtures.js';

describe('the packed tarball', () => {
  it('lists no .ts source outside dist/*.d.ts, and ships bin, dashboards and the manifests', () => {
    // --ignore-scripts: the listing is decided by "files", not by the build; dist/ entries appear when built.
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
    const files = (JSON.parse(out) as [{ files: { path: string }[] }])[0].files.map((f) => f.path);
    expect(files.filter((f) => /\.(?:c|m)?ts$/.test(f) && !/\.d\.(?:c|m)?ts$/.test(f))).toEqual([]);
    // src/ ships only the console's static assets (served from the package), never code.
    expect(files.filter((f) => f.startsWith('test/') || (f.startsWith('src/') && !f.startsWith('src/console/assets/')))).toEqual([]);
    expect(files).toEqual(expect.arrayContaining(['bin/meshtel.js', 'dashboards/meshtel-mesh.json', 'deploy/kubernetes/sample-app.yaml', 'deploy/prometheus/alerts.yaml']));
  }, 90_000);

  it('builds dist on install ("prepare"), which is what bin/meshtel.js runs', () => {
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
    expect(pkg.scripts.prepare).toBe('npm run build');
    expect(readFileSync(path.join(REPO_ROOT, pkg.bin.meshtel ?? ''), 'utf8')).toContain("import('../dist/cli/main.js')");
  });
});
