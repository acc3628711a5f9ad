/**
 * The metadata stage (`meshtel/metadata`, re-exported by the package root): workload identity, node ids and the
 * codecs of the three wire formats Istio exchanges peer metadata in: the `x-envoy-peer-metadata` header, W3C
 * baggage and the TCP `istio-peer-exchange` frame. Listed by name (STYLE.md §2); docs/api.md says why each name is
 * public, and test/package/surface.test.ts keeps this list deliberate.
 */
export type {
  PeerMetadata,
  WorkloadMetadata,
  WorkloadType,
  ProxyType,
  PeerResult,
  UnknownPeerReason,
  PayloadProfile,
} from './types.js';
export { PAYLOAD_PROFILES, DEFAULT_PAYLOAD_PROFILE } from './types.js';
export { loadWorkloadMetadata } from './workload.js';
export type { WorkloadMetadataOptions } from './workload.js';
export { createWorkloadMetadata } from './workload-fields.js';
export type { WorkloadMetadataInput } from './workload-fields.js';
export { formatNodeId, parseNodeId, tryParseNodeId } from './node-id.js';
export type { ParsedNodeId } from './node-id.js';
export { HEADER_PEER_METADATA, HEADER_PEER_METADATA_ID, DEFAULT_MAX_MX_BYTES, encodeMxHeader, decodeMxHeader } from './mx-header.js';
export type { DecodeMxOptions, MxEncodeOptions } from './mx-header.js';
export { HEADER_BAGGAGE, encodeBaggage, decodeBaggage } from './baggage.js';
export type { DecodeBaggageOptions } from './baggage.js';
export { MX_MAGIC, ALPN_PEER_EXCHANGE, encodeTcpFrame, createTcpFrameParser } from './tcp-frame.js';
export type { TcpFrameParser, TcpParseStep, TcpFrameParserOptions } from './tcp-frame.js';
export { parseEndpointMetadata, formatEndpointMetadata } from './endpoint-metadata.js';
