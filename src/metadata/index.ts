/**
 * The metadata stage: workload identity, node ids and the MX header / baggage / TCP frame codecs (`meshtel/metadata`, also re-exported by the package root). Listed by name (STYLE.md §2).
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
export {
  loadWorkloadMetadata,
  createWorkloadMetadata,
  parseDownwardApi,
  readDownwardApiFile,
  DEFAULT_LABELS_PATH,
  DEFAULT_ANNOTATIONS_PATH,
} from './workload.js';
export type { WorkloadMetadataInput, WorkloadMetadataOptions } from './workload.js';
export { formatNodeId, parseNodeId, tryParseNodeId } from './node-id.js';
export type { ParsedNodeId } from './node-id.js';
export {
  HEADER_PEER_METADATA,
  HEADER_PEER_METADATA_ID,
  DEFAULT_MAX_MX_BYTES,
  encodeMxHeader,
  decodeMxHeader,
  decodeMxBytes,
  mxStruct,
  peerFromStruct,
} from './mx-header.js';
export type { DecodeMxOptions, MxEncodeOptions } from './mx-header.js';
export { HEADER_BAGGAGE, encodeBaggage, decodeBaggage } from './baggage.js';
export type { DecodeBaggageOptions } from './baggage.js';
export { MX_MAGIC, ALPN_PEER_EXCHANGE, encodeTcpFrame, createTcpFrameParser } from './tcp-frame.js';
export type { TcpFrameParser, TcpParseStep, TcpFrameParserOptions } from './tcp-frame.js';
export { parseOwner } from './owner.js';
export { parseEndpointMetadata, formatEndpointMetadata, serializePeerAsString } from './endpoint-metadata.js';
