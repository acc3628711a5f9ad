/**
 * SPIFFE identities of a connection, read from its certificates once per connection (Envoy's
 * `connection.uriSanPeerCertificate()` / `uriSanLocalCertificate()`, which istio/proxy reads for
 * `source_principal` / `destination_principal`).
 */
import type { PeerCertificate, TLSSocket } from 'node:tls';

/** The first `URI:spiffe://...` of a subjectAltName string, or `''`. */
export function spiffeFromSan(san: string | undefined): string {
  if (!san) return '';
  for (const part of san.split(',')) {
    const p = part.trim();
    if (p.startsWith('URI:spiffe://')) return p.slice(4);
  }
  return '';
}

/** The peer principal of a TLS socket (its certificate's SPIFFE URI SAN), or `''`. Never throws. */
export function peerPrincipalOf(socket: TLSSocket): string {
  let cert: PeerCertificate | undefined;
  try {
    cert = socket.getPeerCertificate();
  } catch {
    return '';
  }
  return spiffeFromSan(cert?.subjectaltname);
}

/** Our principal on a TLS socket (the local certificate's SPIFFE URI SAN), or `''`. Never throws. */
export function localPrincipalOf(socket: TLSSocket): string {
  try {
    const cert = socket.getCertificate() as { subjectaltname?: string } | null;
    return spiffeFromSan(cert?.subjectaltname);
  } catch {
    return '';
  }
}

/** The principals of one connection. */
export interface ConnectionPrincipals {
  readonly peerPrincipal: string;
  readonly localPrincipal: string;
}

/** The principals of a plain-text connection: none. */
export const PLAIN_TEXT_PRINCIPALS: ConnectionPrincipals = Object.freeze({ peerPrincipal: '', localPrincipal: '' });

/** Principals of a socket: `''` both in plain text, else read from the certificates. */
export function principalsOf(socket: object): ConnectionPrincipals {
  if ((socket as Partial<TLSSocket>).encrypted !== true) return PLAIN_TEXT_PRINCIPALS;
  const tls = socket as TLSSocket;
  return { peerPrincipal: peerPrincipalOf(tls), localPrincipal: localPrincipalOf(tls) };
}
