/**
 * The `yaml` package, required on first use rather than imported: a sidecar started without a metadata, mesh or
 * Telemetry file (and the CLI modules it loads with it) never pays for it (~1.5 MiB, issue 16 RSS;
 * test/sidecar/module-load.test.ts pins it). Every reader of YAML in src/ goes through here.
 */
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

let yaml: typeof Yaml | undefined;

/** The `yaml` module, loaded at the first call. */
export function yamlModule(): typeof Yaml {
  return (yaml ??= createRequire(import.meta.url)('yaml') as typeof Yaml);
}
