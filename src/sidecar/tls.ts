/**
 * Mutual TLS between sidecars, as Istio's ISTIO_MUTUAL: certificates with a SPIFFE URI SAN
 * (`spiffe://<trust domain>/ns/<ns>/sa/<sa>`), loaded from files (Istio mounts them at
 * `/etc/certs/{cert-chain.pem,key.pem,root-cert.pem}` when SDS is not used).
 *
 * Principals and `connection_security_policy="mutual_tls"` come from these certificates. ALPN
 * follows istio/istio `pilot/pkg/networking/util/util.go` (`ALPNInMeshWithMxc`, `ALPNInMeshH2WithMxc`)
 * on the client and `pilot/pkg/security/authn/utils/utils.go` on the server. `istio-peer-exchange` is
 * offered only while the TCP exchange runs: istiod leaves it out with `PILOT_DISABLE_MX_ALPN` or without
 * metadata exchange (`features.MetadataExchange && !features.DisableMxALPN` in `cluster_tls.go`), and a
 * meshtel sidecar with telemetry off runs no exchange, so it must not negotiate one (a peer would then send
 * its frame to the app, or wait for ours).
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions, TlsOptions } from 'node:tls';
import { spiffeFromSan } from '../record/principal.js';
import { ConfigError, MeshtelError, isMeshtelError, quote } from '../core/errors.js';

/** ALPN a client offers for TCP: MX first, then Istio's marker (`ALPNInMeshWithMxc`). */
export const ALPN_TCP_CLIENT = Object.freeze(['istio-peer-exchange', 'istio']);
/** ALPN a client offers for TCP without the exchange (`ALPNInMesh`). */
export const ALPN_TCP_CLIENT_NO_MX = Object.freeze(['istio']);
/** ALPN a client offers for HTTP/1.1 upstreams. */
export const ALPN_HTTP1_CLIENT = Object.freeze(['istio-http/1.1', 'istio', 'http/1.1']);
/** ALPN a client offers for HTTP/2 and gRPC upstreams. */
export const ALPN_HTTP2_CLIENT = Object.freeze(['istio-h2', 'istio', 'h2']);
/** ALPN the inbound server accepts, MX first as Istio's TCP chains do (`ALPNDownstreamWithMxc` and the rest). */
export const ALPN_SERVER = Object.freeze(['istio-peer-exchange', 'h2', 'istio-h2', 'http/1.1', 'istio-http/1.1', 'istio']);
/** ALPN the inbound server accepts without the exchange (`ALPNDownstream` and the rest). */
export const ALPN_SERVER_NO_MX = Object.freeze(ALPN_SERVER.filter((p) => p !== 'istio-peer-exchange'));

/** Options of {@link loadSidecarTls}. */
export interface SidecarTlsOptions {
  /**
   * Offer and accept `istio-peer-exchange` (default true): false with PILOT_DISABLE_MX_ALPN or telemetry off,
   * then a TCP connection never negotiates the exchange.
   */
  readonly mxAlpn?: boolean;
}

/** Files of one workload's identity. */
export interface TlsFiles {
  /** PEM certificate chain (leaf first), Istio's `cert-chain.pem`. */
  readonly certFile: string;
  /** PEM private key, `key.pem`. */
  readonly keyFile: string;
  /** PEM root certificate(s) to trust, `root-cert.pem`. */
  readonly caFile: string;
}

/** Loaded material, ready for node:tls. */
export interface SidecarTls {
  /** This workload's SPIFFE id (leaf URI SAN). */
  readonly localPrincipal: string;
  /** Trust domain parsed from the local principal. */
  readonly trustDomain: string;
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  /** Whether `istio-peer-exchange` is offered and accepted ({@link SidecarTlsOptions.mxAlpn}). */
  readonly mxAlpn: boolean;
  /** The ALPN list of an outbound TCP connection: {@link ALPN_TCP_CLIENT}, or without MX {@link ALPN_TCP_CLIENT_NO_MX}. */
  readonly tcpClientAlpn: readonly string[];
  /** Options for the inbound tls.Server (client certificates required). */
  serverOptions(): TlsOptions;
  /**
   * Options for an outbound connection with the given ALPN list. With `expectedIdentity` the peer
   * certificate must carry exactly that SPIFFE id, else only our trust domain is required.
   */
  clientOptions(alpn: readonly string[], expectedIdentity?: string): ConnectionOptions;
  /** The `checkServerIdentity` of {@link clientOptions}, for per-request use with a shared agent. */
  identityCheck(expectedIdentity?: string): NonNullable<ConnectionOptions['checkServerIdentity']>;
}

/**
 * The upstream certificate is not the identity expected for the endpoint. Envoy fails the handshake
 * the same way when its SAN matcher (Istio's `subjectAltNames` from the service accounts) does not
 * match, and reports 503 `UF` with the TLS error as `upstream_transport_failure_reason`.
 */
export class UpstreamIdentityError extends MeshtelError {
  constructor(expected: string, got: string) {
    super('MESHTEL_ERR_UPSTREAM_IDENTITY', `upstream identity ${quote(got)} is not the expected ${quote(expected)}`, { expected, got });
    this.name = 'UpstreamIdentityError';
  }
}

/** True when a connection failed because of {@link UpstreamIdentityError} (or its trust-domain twin). */
export function isUpstreamIdentityError(err: unknown): boolean {
  return isMeshtelError(err, 'MESHTEL_ERR_UPSTREAM_IDENTITY');
}

// SPIFFE extraction is the record stage's (one definition); re-exported for the listeners.
export { peerPrincipalOf, spiffeFromSan } from '../record/principal.js';

/** Load and check certificates. Throws MESHTEL_ERR_TLS naming the file at fault. */
export function loadSidecarTls(files: TlsFiles, options: SidecarTlsOptions = {}): SidecarTls {
  const mxAlpn = options.mxAlpn ?? true;
  const serverAlpn = mxAlpn ? ALPN_SERVER : ALPN_SERVER_NO_MX;
  const read = (file: string, what: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError('MESHTEL_ERR_TLS', `cannot read ${what} ${quote(file)}: ${(err as Error).message}`, { file }, { cause: err });
    }
  };
  const cert = read(files.certFile, 'certificate chain');
  const key = read(files.keyFile, 'private key');
  const ca = read(files.caFile, 'root certificate');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new ConfigError('MESHTEL_ERR_TLS', `${files.certFile}: not a PEM certificate`, { file: files.certFile }, { cause: err });
  }
  try {
    new X509Certificate(ca);
  } catch (err) {
    throw new ConfigError('MESHTEL_ERR_TLS', `${files.caFile}: not a PEM certificate`, { file: files.caFile }, { cause: err });
  }
  let keyMatches = false;
  try {
    keyMatches = leaf.checkPrivateKey(createPrivateKey(key));
  } catch (err) {
    throw new ConfigError('MESHTEL_ERR_TLS', `${files.keyFile}: not a PEM private key`, { file: files.keyFile }, { cause: err });
  }
  if (!keyMatches) {
    throw new ConfigError('MESHTEL_ERR_TLS', `${files.keyFile} does not match the certificate in ${files.certFile}`, { file: files.keyFile });
  }
  const localPrincipal = spiffeFromSan(leaf.subjectAltName);
  if (localPrincipal === '') {
    throw new ConfigError('MESHTEL_ERR_TLS', `${files.certFile} has no spiffe:// URI SAN (got ${quote(leaf.subjectAltName ?? '')})`, { file: files.certFile });
  }
  const trustDomain = localPrincipal.slice('spiffe://'.length).split('/')[0] ?? '';
  // SPIFFE certificates carry no DNS name: node verifies the chain, this checks the URI SAN. The
  // endpoint's expected identity when the mesh names one (Envoy's exact SAN match), else our trust
  // domain (Envoy's trust-domain match when no service account is known).
  const inTrustDomain = `spiffe://${trustDomain}/`;
  const identityCheck = (expected?: string): NonNullable<ConnectionOptions['checkServerIdentity']> => (_host, peer) => {
    const id = spiffeFromSan(peer.subjectaltname);
    if (expected !== undefined) return id === expected ? undefined : new UpstreamIdentityError(expected, id);
    return id.startsWith(inTrustDomain) ? undefined : new UpstreamIdentityError(`${inTrustDomain}*`, id);
  };
  return Object.freeze({
    localPrincipal,
    trustDomain,
    cert,
    key,
    ca,
    mxAlpn,
    tcpClientAlpn: mxAlpn ? ALPN_TCP_CLIENT : ALPN_TCP_CLIENT_NO_MX,
    serverOptions: (): TlsOptions => ({ cert, key, ca, requestCert: true, rejectUnauthorized: true, ALPNProtocols: [...serverAlpn] }),
    clientOptions: (alpn: readonly string[], expectedIdentity?: string): ConnectionOptions => ({
      cert,
      key,
      ca,
      ALPNProtocols: [...alpn],
      checkServerIdentity: identityCheck(expectedIdentity),
    }),
    identityCheck,
  });
}
