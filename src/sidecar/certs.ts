/**
 * Test certificates for mutual TLS between sidecars: a self-signed root CA and workload certificates
 * whose only identity is a SPIFFE URI SAN, laid out as Istio mounts them (`root-cert.pem`,
 * `cert-chain.pem`, `key.pem`).
 *
 * node:crypto can parse X.509 but not create it, so this drives the `openssl` CLI (present on Debian
 * and on the CI image) with argument arrays, never a shell. It is a test/dev tool, not a CA.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, quote } from '../core/errors.js';
import { spiffeIdOf } from '../metadata/workload-fields.js';

/** One workload to mint a certificate for. */
export interface WorkloadIdentity {
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** Options of {@link mintCertificates}. */
export interface MintCertificatesOptions {
  /** Output directory; one sub-directory per workload `<ns>.<sa>/`. */
  readonly outDir: string;
  readonly trustDomain?: string;
  readonly workloads: readonly WorkloadIdentity[];
  /** Validity in days (default 365). */
  readonly days?: number;
  /** Reuse an existing CA in outDir instead of minting a new one. */
  readonly reuseCa?: boolean;
  /** openssl binary (default `openssl` on PATH). */
  readonly openssl?: string;
}

/** Files written for one workload. */
export interface MintedWorkload {
  readonly spiffeId: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** What {@link mintCertificates} wrote. */
export interface MintedCertificates {
  readonly caFile: string;
  readonly caKeyFile: string;
  readonly workloads: readonly MintedWorkload[];
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** Mint a CA (unless reused) and one certificate per workload. Throws MESHTEL_ERR_TLS when openssl fails. */
export function mintCertificates(options: MintCertificatesOptions): MintedCertificates {
  const trustDomain = options.trustDomain ?? 'cluster.local';
  const days = String(options.days ?? 365);
  const openssl = options.openssl ?? 'openssl';
  if (!NAME.test(trustDomain)) throw new ConfigError('MESHTEL_ERR_CLI_USAGE', `trust domain ${quote(trustDomain)} is not a DNS name`, { field: 'trustDomain' });
  for (const w of options.workloads) {
    if (!NAME.test(w.namespace) || !NAME.test(w.serviceAccount)) {
      throw new ConfigError('MESHTEL_ERR_CLI_USAGE', `workload ${quote(`${w.namespace}/${w.serviceAccount}`)} must be <namespace>/<service account> DNS names`, { workload: w });
    }
  }
  const run = (args: string[]): void => {
    try {
      execFileSync(openssl, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? '';
      throw new ConfigError('MESHTEL_ERR_TLS', `openssl ${args[0] ?? ''} failed: ${stderr || (err as Error).message}`, { args }, { cause: err });
    }
  };
  mkdirSync(options.outDir, { recursive: true });
  const caFile = path.join(options.outDir, 'root-cert.pem');
  const caKeyFile = path.join(options.outDir, 'root-key.pem');
  if (!(options.reuseCa && existsSync(caFile) && existsSync(caKeyFile))) {
    run([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', caKeyFile, '-out', caFile, '-days', String(Number(days) * 10),
      '-subj', `/O=${trustDomain}/CN=meshtel test root CA`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
  }
  const workloads: MintedWorkload[] = [];
  for (const w of options.workloads) {
    const dir = path.join(options.outDir, `${w.namespace}.${w.serviceAccount}`);
    mkdirSync(dir, { recursive: true });
    const spiffeId = spiffeIdOf(trustDomain, w.namespace, w.serviceAccount);
    const keyFile = path.join(dir, 'key.pem');
    const csr = path.join(dir, 'req.csr');
    const certFile = path.join(dir, 'cert-chain.pem');
    const ext = path.join(dir, 'ext.cnf');
    // Istio workload certificates: URI SAN only, client and server auth.
    writeFileSync(
      ext,
      `subjectAltName=critical,URI:${spiffeId}\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n`,
    );
    run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/O=${trustDomain}`]);
    run([
      'x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKeyFile, '-set_serial', `0x${randomBytes(16).toString('hex')}`,
      '-days', days, '-extfile', ext, '-out', certFile,
    ]);
    // The root goes alongside, as Istio mounts root-cert.pem in every pod.
    writeFileSync(path.join(dir, 'root-cert.pem'), readFileSync(caFile));
    workloads.push({ spiffeId, certFile, keyFile, caFile: path.join(dir, 'root-cert.pem') });
  }
  return { caFile, caKeyFile, workloads };
}
