/**
 * The contract of the metadata-exchange filters as the sidecar and the embedding use them.
 * Implementations: `http-exchange.ts` (headers and baggage), `tcp-exchange.ts` (istio-peer-exchange frame),
 * `peer-cache.ts` (Istio's id-keyed cache).
 */
import type { PeerResult } from '../metadata/types.js';

/** Read one header (lower-case name) from a carrier; arrays give their first element. */
export type HeaderGetter<C> = (carrier: C, name: string) => string | string[] | undefined;
/** Set one header on a carrier. */
export type HeaderSetter<C> = (carrier: C, name: string, value: string) => void;
/** Remove one header from a carrier. */
export type HeaderRemover<C> = (carrier: C, name: string) => void;

/** Result of reading MX headers on a request (inbound) or response (outbound). */
export interface ExchangeExtract {
  /** The peer, or a typed reason why not. */
  readonly result: PeerResult;
  /** `x-envoy-peer-metadata-id` was present (even empty): inbound answers with its own id. */
  readonly idReceived: boolean;
  /** `x-envoy-peer-metadata` was present (even empty): inbound answers with its own value. */
  readonly valueReceived: boolean;
  /** True when the peer came from the cache without decoding. */
  readonly cacheHit: boolean;
}

/** Which MX method to propagate with. */
export type PropagationMethod = 'istio_headers' | 'baggage';

/** IN_MESH skips MX headers to external destinations (ProxyConfig.proxyHeaders.metadataExchangeHeaders.mode). */
export type MetadataExchangeMode = 'ALWAYS' | 'IN_MESH';
