/**
 * The HTTP metadata-exchange filter, carrier-generic in the propagator shape (STYLE §4, after
 * opentelemetry-js `W3CTraceContextPropagator`). Behaviour follows P release-1.29
 * `source/extensions/filters/http/peer_metadata/filter.cc` (spec §1 "When headers are added / stripped"):
 *
 * - outbound request (`injectRequest`): always set both MX headers, overwriting what the app sent;
 * - inbound request (`extractRequest`): discover the peer (headers, then baggage when enabled), then
 *   always strip both MX headers so the app never sees them;
 * - inbound response (`injectResponse`): answer with our id only if an id arrived, with our value only if a
 *   value arrived (each decided on its own, an empty header counts as received);
 * - outbound response (`extractResponse`): discover the peer and strip both headers.
 *
 * The local value, id and baggage are encoded once, here (STYLE §5).
 *
 * Peer caching differs from Istio's single per-worker map keyed by the id alone (issue 11.4): inbound requests and
 * outbound responses have a cache each; under mTLS the key is the verified peer principal plus the id, so no
 * plain-text request can touch an mTLS peer's entry; an entry is never replaced, and a request whose value
 * differs from the cached one for its id is decoded for that request only and counted in `cacheConflicts`.
 */
import { ConfigError, quote } from '../core/errors.js';
import { firstHeader } from '../core/headers.js';
import { encodeBaggage, decodeBaggage, HEADER_BAGGAGE } from '../metadata/baggage.js';
import {
  DEFAULT_MAX_MX_BYTES,
  DEFAULT_MAX_MX_DEPTH,
  HEADER_PEER_METADATA,
  HEADER_PEER_METADATA_ID,
  decodeMxHeader,
  encodeMxHeader,
} from '../metadata/mx-header.js';
import { formatNodeId } from '../metadata/node-id.js';
import { DEFAULT_PAYLOAD_PROFILE, PAYLOAD_PROFILES } from '../metadata/types.js';
import type { PayloadProfile, PeerResult, WorkloadMetadata } from '../metadata/types.js';
import { createExchangeCounters } from './counters.js';
import type { ExchangeCounters } from './counters.js';
import { createPeerCache } from './peer-cache.js';
import type { PeerCache } from './peer-cache.js';
import type { ExchangeExtract, HeaderGetter, HeaderRemover, HeaderSetter, PropagationMethod } from './types.js';

/** Options of {@link createHttpMetadataExchange}. */
export interface HttpMetadataExchangeOptions {
  /** This workload. */
  local: WorkloadMetadata;
  /** Our `x-envoy-peer-metadata-id`; default `formatNodeId(local)`. */
  nodeId?: string;
  /** Payload profile we send; default `reduced-1.29`, byte-identical to an Istio 1.29 sidecar (no IDENTITY). */
  profile?: PayloadProfile;
  /** What we propagate: `istio_headers` (default) or `baggage`. */
  propagation?: PropagationMethod;
  /** Also discover inbound peers from `baggage` after the MX headers; default: when propagation is `baggage`. */
  baggageDiscovery?: boolean;
  /** Cache of peers found on inbound requests; default a private 500-entry cache. */
  inboundCache?: PeerCache;
  /** Cache of peers found on outbound responses; default a private 500-entry cache. Must not be the inbound one. */
  outboundCache?: PeerCache;
  /** Largest MX value or baggage accepted (characters), and the cap on our own value; default 8192. */
  maxValueBytes?: number;
  /** Deepest Struct nesting accepted; default 8. */
  maxDepth?: number;
  /** Pod labels sent in LABELS besides the standard ones (`PILOT_MX_ADDITIONAL_LABELS`). */
  additionalLabels?: readonly string[];
}

/** The HTTP exchange. Every method is safe on the request path: nothing throws, nothing is unbounded. */
export interface HttpMetadataExchange {
  /** Outbound request: set our MX headers (or baggage), overwriting any the app set. */
  injectRequest<C>(carrier: C, setter: HeaderSetter<C>): void;
  /**
   * Inbound request: discover the peer, then strip both MX headers. `peerPrincipal` is the downstream's verified
   * SPIFFE id under mTLS (`''` or absent in plain text); it binds the cache entry to that principal.
   */
  extractRequest<C>(carrier: C, getter: HeaderGetter<C>, remover: HeaderRemover<C>, peerPrincipal?: string): ExchangeExtract;
  /** Inbound response: answer with our id / value only where the request carried them. */
  injectResponse<C>(carrier: C, setter: HeaderSetter<C>, extract: ExchangeExtract): void;
  /** Outbound response: discover the peer, then strip both MX headers; `peerPrincipal` is the upstream's verified SAN. */
  extractResponse<C>(carrier: C, getter: HeaderGetter<C>, remover: HeaderRemover<C>, peerPrincipal?: string): ExchangeExtract;
  /** Header names this exchange reads or writes. */
  fields(): string[];
  /** Our `x-envoy-peer-metadata` value (encoded once). */
  readonly headerValue: string;
  /** Our `x-envoy-peer-metadata-id`. */
  readonly headerId: string;
  /** Our baggage value (encoded once). */
  readonly baggage: string;
  /** The peer caches, one per direction. */
  readonly caches: { readonly inbound: PeerCache; readonly outbound: PeerCache };
  /** Decode and cache-conflict counters, read by the sidecar's self-metrics at scrape time. */
  readonly counters: ExchangeCounters;
}

/** Headers as Node keeps them on `IncomingMessage.headers` or an outgoing header object. */
export type NodeHeaders = Record<string, string | string[] | number | undefined>;

/** Getter for Node header objects (names are lower-case there). */
export const nodeHeaderGetter: HeaderGetter<NodeHeaders> = (carrier, name) => {
  const v = carrier[name];
  return typeof v === 'number' ? String(v) : v;
};
/** Setter for Node header objects. */
export const nodeHeaderSetter: HeaderSetter<NodeHeaders> = (carrier, name, value) => {
  carrier[name] = value;
};
/** Remover for Node header objects. */
export const nodeHeaderRemover: HeaderRemover<NodeHeaders> = (carrier, name) => {
  delete carrier[name];
};

/** The headers every discovery strips from what it read (P `filter.cc`: both MX headers, whatever was found). */
export const STRIPPED_HEADERS: readonly string[] = Object.freeze([HEADER_PEER_METADATA, HEADER_PEER_METADATA_ID]);

/** A remover that leaves the carrier as it is, for a caller that strips by {@link nodeHeadersWithout} instead. */
export const keepHeaders: HeaderRemover<unknown> = () => {};

/**
 * A copy of a Node header object without {@link STRIPPED_HEADERS}: the remover's work done as a new object, for a
 * carrier that can be replaced (`IncomingMessage.headers` has a setter). Deleting a property that is not an
 * object's last turns it into a slow dictionary in V8: the two deletes cost ~0.7 µs per request (measured on
 * Node 20) and slow every later header read, where copying the few other headers costs ~0.2 µs.
 */
export function nodeHeadersWithout(headers: NodeHeaders): NodeHeaders {
  const out: NodeHeaders = {};
  for (const name in headers) {
    // The two names of STRIPPED_HEADERS, compared directly (no array search per header).
    if (name !== HEADER_PEER_METADATA && name !== HEADER_PEER_METADATA_ID) out[name] = headers[name];
  }
  return out;
}


/**
 * Create the HTTP exchange. Throws ConfigError `MESHTEL_ERR_ENCODE` when our own value exceeds
 * `maxValueBytes` (a peer with the same limit would refuse it), `MESHTEL_ERR_INVALID_CONFIG` for bad options.
 */
export function createHttpMetadataExchange(options: HttpMetadataExchangeOptions): HttpMetadataExchange {
  const { local } = options;
  const profile = options.profile ?? DEFAULT_PAYLOAD_PROFILE;
  if (!PAYLOAD_PROFILES.includes(profile)) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `profile must be one of ${PAYLOAD_PROFILES.join(', ')}, got ${quote(profile)}`, {
      field: 'profile',
      value: profile,
    });
  }
  const propagation = options.propagation ?? 'istio_headers';
  if (propagation !== 'istio_headers' && propagation !== 'baggage') {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `propagation must be istio_headers or baggage, got ${quote(propagation)}`, {
      field: 'propagation',
      value: propagation,
    });
  }
  const maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_MX_BYTES;
  if (!Number.isInteger(maxValueBytes) || maxValueBytes < 1) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `maxValueBytes must be a positive integer, got ${quote(maxValueBytes)}`, {
      field: 'maxValueBytes',
      value: maxValueBytes,
    });
  }
  const decodeOptions = { maxBytes: maxValueBytes, maxDepth: options.maxDepth ?? DEFAULT_MAX_MX_DEPTH };
  const baggageDiscovery = options.baggageDiscovery ?? propagation === 'baggage';
  const inboundCache = options.inboundCache ?? createPeerCache();
  const outboundCache = options.outboundCache ?? createPeerCache();
  if (inboundCache === outboundCache) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', 'inboundCache and outboundCache must be two caches: one would let a response poison requests', {
      field: 'outboundCache',
    });
  }
  const counters = createExchangeCounters();

  const headerValue = encodeMxHeader(local, profile, { additionalLabels: options.additionalLabels ?? [] });
  if (headerValue.length > maxValueBytes) {
    throw new ConfigError(
      'MESHTEL_ERR_ENCODE',
      `local x-envoy-peer-metadata is ${headerValue.length} characters, over maxValueBytes ${maxValueBytes}; drop labels or raise the limit`,
      { field: 'maxValueBytes', value: headerValue.length },
    );
  }
  const headerId = options.nodeId ?? formatNodeId(local);
  const baggage = encodeBaggage(local);
  const sendHeaders = propagation === 'istio_headers';

  /**
   * MX header discovery with an id-keyed cache (P `MXMethod::lookup`). A hit whose request carries no value or the
   * value the entry was decoded from skips decoding; a different value is decoded for this request only.
   */
  const lookup = (cache: PeerCache, id: string | undefined, value: string | undefined, principal: string | undefined): { result: PeerResult; cacheHit: boolean } => {
    // Headers cannot hold "\n", so a plain-text id never equals a principal-bound key.
    const key = id === undefined || id === '' ? undefined : principal ? `${principal}\n${id}` : id;
    if (key !== undefined) {
      const hit = cache.get(key);
      if (hit !== undefined) {
        if (value === undefined || value === cache.valueOf(key)) return { result: hit, cacheHit: true };
        counters.cacheConflicts++;
        counters.decodes++;
        return { result: decodeMxHeader(value, decodeOptions), cacheHit: false };
      }
    }
    if (value === undefined) {
      return { result: { ok: false, reason: id !== undefined ? 'id_only' : 'no_header' }, cacheHit: false };
    }
    counters.decodes++;
    const result = decodeMxHeader(value, decodeOptions);
    // Only peers are cached: a failure under an id is decoded again next time (bounded by maxValueBytes).
    if (result.ok && key !== undefined) cache.set(key, result, value);
    return { result, cacheHit: false };
  };

  const extract = <C>(
    carrier: C,
    getter: HeaderGetter<C>,
    remover: HeaderRemover<C>,
    withBaggage: boolean,
    cache: PeerCache,
    principal: string | undefined,
  ): ExchangeExtract => {
    const id = firstHeader(getter(carrier, HEADER_PEER_METADATA_ID));
    const value = firstHeader(getter(carrier, HEADER_PEER_METADATA));
    const found = lookup(cache, id, value, principal);
    const cacheHit = found.cacheHit;
    let result = found.result;
    if (!result.ok && withBaggage) {
      const raw = getter(carrier, HEADER_BAGGAGE);
      if (raw !== undefined) {
        // A baggage parse is a decode too (meshtel_peer_decodes_total: "MX header, baggage or TCP frame").
        counters.decodes++;
        const fromBaggage = decodeBaggage(raw, { maxBytes: maxValueBytes });
        // Keep the MX failure reason when baggage is merely absent or useless and MX headers were sent.
        if (fromBaggage.ok || result.reason === 'no_header') result = fromBaggage;
      }
    }
    // Every method's remove() runs whatever was found: the app never sees MX headers (baggage stays).
    for (const name of STRIPPED_HEADERS) remover(carrier, name);
    return { result, idReceived: id !== undefined, valueReceived: value !== undefined, cacheHit };
  };

  return {
    injectRequest(carrier, setter) {
      if (sendHeaders) {
        setter(carrier, HEADER_PEER_METADATA_ID, headerId);
        setter(carrier, HEADER_PEER_METADATA, headerValue);
      } else {
        setter(carrier, HEADER_BAGGAGE, baggage);
      }
    },
    extractRequest(carrier, getter, remover, peerPrincipal) {
      return extract(carrier, getter, remover, baggageDiscovery, inboundCache, peerPrincipal);
    },
    injectResponse(carrier, setter, ex) {
      if (sendHeaders) {
        if (ex.idReceived) setter(carrier, HEADER_PEER_METADATA_ID, headerId);
        if (ex.valueReceived) setter(carrier, HEADER_PEER_METADATA, headerValue);
      } else {
        setter(carrier, HEADER_BAGGAGE, baggage);
      }
    },
    extractResponse(carrier, getter, remover, peerPrincipal) {
      // Baggage discovery is downstream-only in Istio (an upstream use is ignored).
      return extract(carrier, getter, remover, false, outboundCache, peerPrincipal);
    },
    fields() {
      return baggageDiscovery || !sendHeaders
        ? [HEADER_PEER_METADATA, HEADER_PEER_METADATA_ID, HEADER_BAGGAGE]
        : [HEADER_PEER_METADATA, HEADER_PEER_METADATA_ID];
    },
    headerValue,
    headerId,
    baggage,
    caches: { inbound: inboundCache, outbound: outboundCache },
    counters,
  };
}
