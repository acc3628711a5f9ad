/**
 * `meshtel certs`: mint a test root CA and SPIFFE workload certificates for `meshtel sidecar --tls-*`
 * (src/sidecar/certs.ts; needs the `openssl` CLI).
 */
import type { Command } from 'commander';
import { parseIntInRange } from '../../core/config.js';
import { ConfigError, quote } from '../../core/errors.js';
import { mintCertificates } from '../../sidecar/certs.js';
import type { WorkloadIdentity } from '../../sidecar/certs.js';

interface CertsFlags {
  out: string;
  trustDomain: string;
  days: string;
  reuseCa?: boolean;
}

/** `default/bookinfo-productpage` → identity. */
export function parseWorkloadArg(value: string): WorkloadIdentity {
  const m = /^([^/\s]+)\/([^/\s]+)$/.exec(value);
  if (!m) throw new ConfigError('MESHTEL_ERR_CLI_USAGE', `workload must be <namespace>/<service account>, got ${quote(value)}`, { field: 'workload' });
  return { namespace: m[1]!, serviceAccount: m[2]! };
}

/** Register `meshtel certs`. */
export function registerCertsCommand(program: Command): void {
  program
    .command('certs')
    .description('mint a test root CA and workload certificates with SPIFFE URI SANs (Istio file layout)')
    .argument('<workloads...>', '<namespace>/<service account>, one per workload')
    .option('-o, --out <dir>', 'output directory', 'certs')
    .option('--trust-domain <domain>', 'SPIFFE trust domain', 'cluster.local')
    .option('--days <n>', 'validity of workload certificates', '365')
    .option('--reuse-ca', 'keep root-cert.pem/root-key.pem already in --out')
    .addHelpText(
      'after',
      `
Writes <out>/root-cert.pem, <out>/root-key.pem and, per workload, <out>/<ns>.<sa>/{cert-chain.pem,key.pem,root-cert.pem}.

Example:
  $ meshtel certs default/bookinfo-productpage default/bookinfo-reviews -o certs`,
    )
    .action((workloads: string[], flags: CertsFlags) => {
      const minted = mintCertificates({
        outDir: flags.out,
        trustDomain: flags.trustDomain,
        days: parseIntInRange(flags.days, '--days', 1, 36500) ?? 365,
        reuseCa: flags.reuseCa === true,
        workloads: workloads.map(parseWorkloadArg),
      });
      process.stdout.write(`root CA: ${minted.caFile}\n`);
      for (const w of minted.workloads) process.stdout.write(`${w.spiffeId}\n  --tls-cert ${w.certFile} --tls-key ${w.keyFile} --tls-ca ${w.caFile}\n`);
    });
}
