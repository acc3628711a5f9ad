/**
 * `meshtel encode`: what a workload would send, from flags or a metadata file (src/cli/encode.ts).
 */
import type { Command } from 'commander';
import { ConfigError, quote } from '../../core/errors.js';
import type { PayloadProfile, ProxyType } from '../../metadata/types.js';
import type { WorkloadMetadataInput } from '../../metadata/workload.js';
import { buildMetadata, encodeValue, inputFromText, PROFILES } from '../encode.js';
import type { EncodeFormat } from '../encode.js';
import { readInput } from '../io.js';

interface EncodeFlags {
  file?: string;
  format: string;
  profile: string;
  nodeId?: string;
  name?: string;
  namespace?: string;
  workload?: string;
  owner?: string;
  cluster?: string;
  app?: string;
  version?: string;
  canonicalService?: string;
  canonicalRevision?: string;
  label: Record<string, string>;
  serviceAccount?: string;
  trustDomain?: string;
  identity?: string;
  region?: string;
  zone?: string;
  meshId?: string;
  istioVersion?: string;
  ip: string[];
  proxyType?: string;
}

const FORMATS: readonly EncodeFormat[] = ['header', 'baggage', 'tcp', 'id', 'all'];

function label(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new ConfigError('MESHTEL_ERR_CLI_USAGE', `--label must be key=value, got ${quote(value)}`, { field: 'label' });
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

function list(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').filter(Boolean)];
}

/** Register `meshtel encode`. */
export function registerEncodeCommand(program: Command): void {
  program
    .command('encode')
    .description('encode workload metadata as an x-envoy-peer-metadata value, baggage, a TCP MX frame (hex) or a node id')
    .option('-f, --file <file>', 'YAML/JSON metadata (meshtel field names or Istio node keys NAME, LABELS, ...); "-" reads stdin')
    .option('--format <format>', 'header | baggage | tcp | id | all', 'header')
    .option('--profile <profile>', 'flat (Istio ≤1.23) | reduced (1.24–1.28) | reduced-1.29 (1.29, the default) | reduced-identity (1.29 codec with IDENTITY, opt-in)', 'reduced-1.29')
    .option('--node-id <id>', 'node id for the TCP frame and --format id (default: built from the metadata)')
    .option('--name <pod>', 'pod name (NAME)')
    .option('--namespace <ns>', 'namespace (NAMESPACE)')
    .option('--workload <name>', 'workload name (WORKLOAD_NAME)')
    .option('--owner <owner>', 'OWNER, e.g. kubernetes://apis/apps/v1/namespaces/default/deployments/reviews-v1')
    .option('--cluster <id>', 'cluster id (CLUSTER_ID)')
    .option('--app <app>', 'app label')
    .option('--version <version>', 'version label')
    .option('--canonical-service <name>', 'service.istio.io/canonical-name')
    .option('--canonical-revision <rev>', 'service.istio.io/canonical-revision')
    .option('-l, --label <key=value>', 'pod label (repeatable)', label, {})
    .option('--service-account <sa>', 'service account (gives IDENTITY)')
    .option('--trust-domain <domain>', 'SPIFFE trust domain')
    .option('--identity <spiffe>', 'IDENTITY, e.g. spiffe://cluster.local/ns/default/sa/bookinfo')
    .option('--region <region>', 'locality region')
    .option('--zone <zone>', 'locality zone')
    .option('--mesh-id <id>', 'MESH_ID (flat profile)')
    .option('--istio-version <v>', 'ISTIO_VERSION (flat profile)')
    .option('--ip <ip>', 'instance IP (repeatable)', list, [])
    .option('--proxy-type <type>', 'sidecar | router | waypoint (node id prefix)')
    .addHelpText(
      'after',
      `
Examples:
  $ meshtel encode --name reviews-v1-abc --namespace bookinfo --workload reviews-v1 \\
      --owner kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/reviews-v1 --app reviews --version v1
  $ meshtel encode -f productpage.yaml --profile flat
  $ meshtel decode "$VALUE" | jq .struct | meshtel encode -f - --profile reduced   # re-encode for 1.24+
  $ meshtel encode -f meta.yaml --format all`,
    )
    .action(async (flags: EncodeFlags) => {
      const format = flags.format as EncodeFormat;
      if (!FORMATS.includes(format)) throw new ConfigError('MESHTEL_ERR_CLI_USAGE', `--format must be one of ${FORMATS.join(', ')}, got ${quote(flags.format)}`, { field: 'format' });
      const profile = flags.profile as PayloadProfile;
      if (!PROFILES.includes(profile)) throw new ConfigError('MESHTEL_ERR_CLI_USAGE', `--profile must be one of ${PROFILES.join(', ')}, got ${quote(flags.profile)}`, { field: 'profile' });
      const fromFile = flags.file !== undefined ? inputFromText(await readInput(flags.file), flags.file) : {};
      const fromFlags: Partial<WorkloadMetadataInput> = {};
      const set = <K extends keyof WorkloadMetadataInput>(k: K, v: WorkloadMetadataInput[K] | undefined): void => {
        if (v !== undefined) fromFlags[k] = v;
      };
      set('name', flags.name);
      set('namespace', flags.namespace);
      set('workload', flags.workload);
      set('owner', flags.owner);
      set('cluster', flags.cluster);
      set('app', flags.app);
      set('version', flags.version);
      set('canonicalService', flags.canonicalService);
      set('canonicalRevision', flags.canonicalRevision);
      set('serviceAccount', flags.serviceAccount);
      set('trustDomain', flags.trustDomain);
      set('identity', flags.identity);
      set('region', flags.region);
      set('zone', flags.zone);
      set('meshId', flags.meshId);
      set('istioVersion', flags.istioVersion);
      set('proxyType', flags.proxyType as ProxyType | undefined);
      if (flags.ip.length > 0) fromFlags.instanceIps = flags.ip;
      if (Object.keys(flags.label).length > 0) fromFlags.labels = flags.label;
      const meta = buildMetadata(fromFile, fromFlags);
      const out = encodeValue(meta, format, profile, flags.nodeId);
      process.stdout.write(`${out}\n`);
    });
}
