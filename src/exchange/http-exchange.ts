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
 */
import { ConfigError, quote } from '../core/errors.js';
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
  /** Peer cache; default a private 500-entry cache. Share one between exchanges to share hits. */
  cache?: PeerCache;
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
  /** Inbound request: discover the peer, then strip both MX headers. */
  extractRequest<C>(carrier: C, getter: HeaderGetter<C>, remover: HeaderRemover<C>): ExchangeExtract;
  /** Inbound response: answer with our id / value only where the request carried them. */
  injectResponse<C>(carrier: C, setter: HeaderSetter<C>, extract: ExchangeExtract): void;
  /** Outbound response: discover the peer, then strip both MX headers. */
  extractResponse<C>(carrier: C, getter: HeaderGetter<C>, remover: HeaderRemover<C>): ExchangeExtract;
  /** Header names this exchange reads or writes. */
  fields(): string[];
  /** Our `x-envoy-peer-metadata` value (encoded once). */
  readonly headerValue: string;
  /** Our `x-envoy-peer-metadata-id`. */
  readonly headerId: string;
  /** Our baggage value (encoded once). */
  readonly baggage: string;
  /** The peer cache in use. */
  readonly cache: PeerCache;
  /** Found/unknown counters for self-metrics. */
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

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
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
  const cache = options.cache ?? createPeerCache();
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

  /** MX header discovery with the id-keyed cache (P `MXMethod::lookup`). */
  const lookup = (id: string | undefined, value: string | undefined): { result: PeerResult; cacheHit: boolean } => {
    if (id !== undefined && id !== '') {
      // A hit skips decoding entirely, even when the value differs or is absent (Istio keys on the id alone).
      const hit = cache.get(id);
      if (hit !== undefined) return { result: hit, cacheHit: true };
    }
    if (value === undefined) {
      return { result: { ok: false, reason: id !== undefined ? 'id_only' : 'no_header' }, cacheHit: false };
    }
    counters.decodes++;
    const result = decodeMxHeader(value, decodeOptions);
    // Only peers are cached: a failure under an id is decoded again next time (bounded by maxValueBytes).
    if (result.ok && id !== undefined && id !== '') cache.set(id, result);
    return { result, cacheHit: false };
  };

  const count = (result: PeerResult, via: 'headers' | 'cache' | 'baggage'): void => {
    if (result.ok) counters.found[via]++;
    else counters.unknown[result.reason]++;
  };

  const extract = <C>(carrier: C, getter: HeaderGetter<C>, remover: HeaderRemover<C>, withBaggage: boolean): ExchangeExtract => {
    const id = first(getter(carrier, HEADER_PEER_METADATA_ID));
    const value = first(getter(carrier, HEADER_PEER_METADATA));
    const found = lookup(id, value);
    const cacheHit = found.cacheHit;
    let result = found.result;
    let via: 'headers' | 'cache' | 'baggage' = cacheHit ? 'cache' : 'headers';
    if (!result.ok && withBaggage) {
      const raw = getter(carrier, HEADER_BAGGAGE);
      if (raw !== undefined) {
        const fromBaggage = decodeBaggage(raw, { maxBytes: maxValueBytes });
        // Keep the MX failure reason when baggage is merely absent or useless and MX headers were sent.
        if (fromBaggage.ok || result.reason === 'no_header') {
          result = fromBaggage;
          via = 'baggage';
        }
      }
    }
    // Every method's remove() runs whatever was found: the app never sees MX headers (baggage stays).
    remover(carrier, HEADER_PEER_METADATA);
    remover(carrier, HEADER_PEER_METADATA_ID);
    count(result, via);
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
    extractRequest(carrier, getter, remover) {
      return extract(carrier, getter, remover, baggageDiscovery);
    },
    injectResponse(carrier, setter, ex) {
      if (sendHeaders) {
        if (ex.idReceived) setter(carrier, HEADER_PEER_METADATA_ID, headerId);
        if (ex.valueReceived) setter(carrier, HEADER_PEER_METADATA, headerValue);
      } else {
        setter(carrier, HEADER_BAGGAGE, baggage);
      }
    },
    extractResponse(carrier, getter, remover) {
      // Baggage discovery is downstream-only in Istio (an upstream use is ignored).
      return extract(carrier, getter, remover, false);
    },
    fields() {
      return baggageDiscovery || !sendHeaders
        ? [HEADER_PEER_METADATA, HEADER_PEER_METADATA_ID, HEADER_BAGGAGE]
        : [HEADER_PEER_METADATA, HEADER_PEER_METADATA_ID];
    },
    headerValue,
    headerId,
    baggage,
    cache,
    counters,
  };
}
