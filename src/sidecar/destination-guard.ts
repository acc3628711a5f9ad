/**
 * Where the outbound listener may not pass a request through to.
 *
 * In Istio the app's traffic reaches Envoy's 15001 through iptables, and the destination of a
 * passthrough is the connection's original destination (`PassthroughCluster`, an ORIGINAL_DST cluster).
 * Two rules keep Envoy from ever forwarding to the pod's own loopback or to itself:
 * - `istio-iptables` returns traffic to `127.0.0.1/32` before the redirect (istio/istio
 *   `tools/istio-iptables/pkg/capture/run.go`, the `ISTIO_OUTPUT` chain), so a request to loopback never
 *   enters the proxy;
 * - connections whose original destination is the outbound (15001) or inbound (15006) port itself match
 *   the `virtualOutbound-blackhole` / `virtualInbound-blackhole` filter chains and go to `BlackHoleCluster`
 *   (istio/istio `pilot/pkg/networking/core/listener.go`, `buildSidecarOutboundListener` /
 *   `buildInboundBlackhole...`).
 * meshtel has no iptables capture: the app names the destination in the Host header or an absolute-form
 * URL, which anyone able to reach the listener controls. So the same two outcomes are enforced from the
 * authority: a loopback destination, or any of the sidecar's own ports on an address of this host, is
 * answered like `BlackHoleCluster` (502, cluster `BlackHoleCluster`) and counted. `allowLoopback`
 * (`loopbackPassthrough`) lifts the first rule for single-host setups and tests, never the second.
 */
import dns from 'node:dns';
import net from 'node:net';
import os from 'node:os';
import type { RefusalReason } from './listener-limits.js';

/** Decides, per passthrough destination, whether it is refused and why. */
export interface DestinationGuard {
  /** A port the sidecar listens on (added as listeners bind, ephemeral ones included). */
  addOwnPort(port: number): void;
  /** The reason to refuse `host:port`, or undefined when the destination may be reached. */
  check(host: string, port: number): RefusalReason | undefined;
  /**
   * For a destination given as a DNS name: resolve it once, check the address like an IP, and call back
   * with the address the passthrough must connect to (so a name that resolves to loopback, or a DNS
   * answer that changes between check and connect, cannot reach what an IP could not). `undefined` when
   * the name does not resolve: the connect fails as it would have (UF).
   */
  resolve(host: string, port: number, done: (outcome: ResolvedDestination | undefined) => void): void;
}

/** What {@link DestinationGuard.resolve} found. */
export type ResolvedDestination = { readonly address: string; readonly refused?: undefined } | { readonly refused: RefusalReason; readonly address: string };

/** The resolver's signature (node's `dns.lookup` with one address). */
export type LookupFn = (host: string, callback: (err: NodeJS.ErrnoException | null, address: string) => void) => void;

const defaultLookup: LookupFn = (host, callback) => dns.lookup(host, (err, address) => callback(err, address));
/** Resolved names kept this long (Envoy's default `dns_refresh_rate` is 5 s) and at most this many. */
const RESOLVED_TTL_MS = 5000;
const MAX_RESOLVED = 1024;

/** True for 127.0.0.0/8, ::1, IPv4-mapped loopback, the unspecified addresses and `localhost` names. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  // RFC 6761 §6.3: localhost and every name under it is loopback.
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  const family = net.isIP(h);
  if (family === 4) return h.startsWith('127.') || h === '0.0.0.0';
  if (family === 6) {
    if (h === '::1' || h === '::' || /^0{0,4}(:0{0,4}){6}:0{0,3}1$/.test(h)) return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return mapped !== null && isLoopbackHost(mapped[1] as string);
  }
  return false;
}

/**
 * Build the guard. `localAddresses` are addresses of this pod besides loopback (its instance IPs, the
 * bind address); the host's interface addresses are added, since 0.0.0.0 listeners answer on all of them.
 */
export function createDestinationGuard(ownPorts: Iterable<number>, localAddresses: Iterable<string> = [], allowLoopback = false, lookup: LookupFn = defaultLookup): DestinationGuard {
  const ports = new Set<number>();
  for (const p of ownPorts) if (p > 0) ports.add(p);
  const local = new Set<string>();
  for (const a of localAddresses) if (a !== '') local.add(a.toLowerCase());
  for (const list of Object.values(os.networkInterfaces())) {
    for (const i of list ?? []) local.add(i.address.toLowerCase());
  }
  // Bounded like every map fed by traffic: passthrough names come from the Host header.
  const resolved = new Map<string, { readonly address: string; readonly expires: number }>();
  const check = (host: string, port: number): RefusalReason | undefined => {
    const h = host.toLowerCase();
    const loopback = isLoopbackHost(h);
    if (ports.has(port) && (loopback || local.has(h))) return 'own_port';
    return loopback && !allowLoopback ? 'loopback_destination' : undefined;
  };
  const outcome = (address: string, port: number): ResolvedDestination => {
    const refused = check(address, port);
    return refused === undefined ? { address } : { refused, address };
  };
  return {
    addOwnPort(port) {
      if (port > 0) ports.add(port);
    },
    check,
    resolve(host, port, done) {
      const key = host.toLowerCase();
      const hit = resolved.get(key);
      const now = Date.now();
      if (hit !== undefined && hit.expires > now) {
        done(outcome(hit.address, port));
        return;
      }
      lookup(key, (err, address) => {
        if (err || !address) {
          done(undefined);
          return;
        }
        if (resolved.size >= MAX_RESOLVED) resolved.clear();
        resolved.set(key, { address, expires: Date.now() + RESOLVED_TTL_MS });
        done(outcome(address, port));
      });
    },
  };
}
