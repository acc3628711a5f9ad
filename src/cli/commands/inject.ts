/**
 * `meshtel inject -f deploy.yaml`: add the meshtel sidecar to Kubernetes workloads, like
 * `istioctl kube-inject`. The transform itself is src/cli/inject.ts.
 */
import type { Command } from 'commander';
import { ConfigError } from '../../core/errors.js';
import { injectManifests, validateInjectOptions, DEFAULT_SIDECAR_IMAGE } from '../inject.js';
import { readInput } from '../io.js';

interface InjectFlags {
  filename: string;
  output?: string;
  image: string;
  clusterId: string;
  meshId?: string;
  trustDomain: string;
  namespace: string;
  merge: boolean;
  quiet?: boolean;
}

/** Register `meshtel inject`. */
export function registerInjectCommand(program: Command): void {
  program
    .command('inject')
    .description('add the meshtel sidecar (istio-proxy container, env, downward-API volume, merged-metrics annotations) to workloads')
    .requiredOption('-f, --filename <file>', 'manifest file (multi-document YAML); "-" reads stdin')
    .option('-o, --output <file>', 'write here instead of stdout')
    .option('--image <image>', 'sidecar image', DEFAULT_SIDECAR_IMAGE)
    .option('--cluster-id <id>', 'ISTIO_META_CLUSTER_ID', 'Kubernetes')
    .option('--mesh-id <id>', 'ISTIO_META_MESH_ID (default: the trust domain)')
    .option('--trust-domain <domain>', 'SPIFFE trust domain', 'cluster.local')
    .option('-n, --namespace <ns>', 'namespace for objects without metadata.namespace', 'default')
    .option('--no-merge', 'do not rewrite prometheus.io annotations for metrics merging')
    .option('-q, --quiet', 'do not print the summary on stderr')
    .addHelpText(
      'after',
      `
Handles Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod and List; other documents
pass through. Injecting twice changes nothing (pods with sidecar.istio.io/status are skipped).

Examples:
  $ meshtel inject -f deploy.yaml | kubectl apply -f -
  $ kubectl get deploy reviews -o yaml | meshtel inject -f - > reviews-injected.yaml
  $ meshtel inject -f app.yaml --image registry.local/meshtel:dev --cluster-id east -o app-injected.yaml`,
    )
    .action(async (flags: InjectFlags) => {
      const options = {
        image: flags.image,
        clusterId: flags.clusterId,
        trustDomain: flags.trustDomain,
        namespace: flags.namespace,
        prometheusMerge: flags.merge,
        ...(flags.meshId !== undefined ? { meshId: flags.meshId } : {}),
      };
      validateInjectOptions(options);
      const text = await readInput(flags.filename);
      if (text.trim() === '') throw new ConfigError('MESHTEL_ERR_CONFIG_FILE', `${flags.filename} is empty`, { path: flags.filename });
      const result = injectManifests(text, options);
      if (flags.output !== undefined) {
        const { writeFile } = await import('node:fs/promises');
        await writeFile(flags.output, result.yaml);
      } else {
        process.stdout.write(result.yaml);
      }
      if (!flags.quiet) {
        for (const id of result.report.injected) process.stderr.write(`injected ${id}\n`);
        for (const s of result.report.skipped) process.stderr.write(`skipped ${s}\n`);
      }
    });
}
