/**
 * The TCP `istio-peer-exchange` in-band frame (spec §3; P release-1.29
 * `source/extensions/filters/network/metadata_exchange/metadata_exchange{,_initial_header}.{h,cc}`):
 * `uint32 magic 0x3D230467`, `uint32 length` (both big-endian), then a `google.protobuf.Any` wrapping a
 * Struct `{ "x-envoy-peer-metadata": <MX struct>, "x-envoy-peer-metadata-id": <node id> }`.
 */
import type { PayloadProfile, PeerResult, WorkloadMetadata } from './types.js';
import { STRUCT_TYPE_URL, decodeAny, decodeStruct, encodeAnyStruct, encodeStruct } from './struct-codec.js';
import { DEFAULT_MAX_MX_DEPTH, HEADER_PEER_METADATA, HEADER_PEER_METADATA_ID, mxStruct, peerFromStruct } from './mx-header.js';
import type { MxEncodeOptions } from './mx-header.js';

/** Magic that opens every frame (P `MetadataExchangeInitialHeader::magic_number`). */
export const MX_MAGIC = 0x3d230467;
/** ALPN protocol that switches TCP metadata exchange on. */
export const ALPN_PEER_EXCHANGE = 'istio-peer-exchange';
/** Size of the magic + length header. */
export const TCP_FRAME_HEADER_BYTES = 8;
/** Default cap on a frame's payload length. */
export const DEFAULT_MAX_FRAME_BYTES = 8192;

/** Encode this workload's frame. Computed once per process by the TCP exchange (STYLE §5). */
export function encodeTcpFrame(meta: WorkloadMetadata, nodeId: string, profile: PayloadProfile, options?: MxEncodeOptions): Buffer {
  // Istio 1.29 hands the node locality to the TCP frame only (P release-1.29 metadata_exchange.cc).
  const inner = mxStruct(meta, profile, { ...options, locality: true });
  const payload = encodeAnyStruct(encodeStruct({ [HEADER_PEER_METADATA]: inner, [HEADER_PEER_METADATA_ID]: nodeId }));
  const header = Buffer.allocUnsafe(TCP_FRAME_HEADER_BYTES);
  header.writeUInt32BE(MX_MAGIC, 0);
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/** One step of the incremental parser. */
export type TcpParseStep =
  /** Need more bytes. */
  | { readonly done: false }
  /**
   * Finished. `rest` holds the bytes after the frame (application data), or every byte received when
   * nothing was consumed (`not_mx`, `truncated`, `too_large`). `peerId` is `''` when unknown.
   */
  | { readonly done: true; readonly result: PeerResult; readonly peerId: string; readonly rest: Buffer };

/** An incremental frame parser for one connection. */
export interface TcpFrameParser {
  /** Feed the next chunk of the inbound stream. */
  push(chunk: Buffer): TcpParseStep;
  /** The peer half-closed; finishes with `truncated` unless already done. */
  end(): TcpParseStep;
}

/** Options of {@link createTcpFrameParser}. */
export interface TcpFrameParserOptions {
  /** Largest accepted payload length; default 8192. A bigger frame gives `too_large`. */
  maxBytes?: number;
  /** Deepest accepted Struct nesting inside the frame (outer frame struct excluded); default 8. */
  maxDepth?: number;
}

const NEED_MORE: TcpParseStep = Object.freeze({ done: false });
const MAGIC_BYTES = Buffer.from([0x3d, 0x23, 0x04, 0x67]);
const EMPTY = Buffer.alloc(0);

/**
 * Create a parser. It checks the magic byte by byte, so a non-MX stream is recognised from its first
 * byte (nothing consumed: `rest` is everything received), waits for the whole frame, enforces
 * `maxBytes` before buffering the payload, and never throws.
 */
export function createTcpFrameParser(options: TcpFrameParserOptions = {}): TcpFrameParser {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const maxDepth = (options.maxDepth ?? DEFAULT_MAX_MX_DEPTH) + 1;
  const chunks: Buffer[] = [];
  let received = 0;
  let final: Extract<TcpParseStep, { done: true }> | undefined;

  const all = (): Buffer => (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
  const finish = (result: PeerResult, peerId: string, rest: Buffer): Extract<TcpParseStep, { done: true }> => {
    final = { done: true, result, peerId, rest };
    chunks.length = 0;
    return final;
  };

  return {
    push(chunk) {
      // After the frame the parser is transparent: later bytes are application data.
      if (final) return { done: true, result: final.result, peerId: final.peerId, rest: chunk };
      if (chunk.length === 0) return NEED_MORE;
      const before = received;
      chunks.push(chunk);
      received += chunk.length;
      // Magic: compare only the bytes new in this chunk, so a mismatch is found as early as possible.
      for (let i = before; i < Math.min(received, 4); i++) {
        if (chunk[i - before] !== MAGIC_BYTES[i]) {
          return finish({ ok: false, reason: 'not_mx', detail: 'istio-peer-exchange magic not found' }, '', all());
        }
      }
      if (received < TCP_FRAME_HEADER_BYTES) return NEED_MORE;
      const buf = all();
      chunks.length = 0;
      chunks.push(buf);
      const length = buf.readUInt32BE(4);
      if (length > maxBytes) {
        return finish({ ok: false, reason: 'too_large', detail: `frame of ${length} > ${maxBytes} bytes` }, '', buf);
      }
      const end = TCP_FRAME_HEADER_BYTES + length;
      if (received < end) return NEED_MORE;
      const rest = received === end ? EMPTY : buf.subarray(end);
      const { result, peerId } = decodePayload(buf.subarray(TCP_FRAME_HEADER_BYTES, end), maxDepth);
      return finish(result, peerId, rest);
    },
    end() {
      if (final) return final;
      return finish({ ok: false, reason: 'truncated', detail: `connection closed after ${received} bytes` }, '', all());
    },
  };
}

function decodePayload(payload: Buffer, maxDepth: number): { result: PeerResult; peerId: string } {
  const any = decodeAny(payload);
  if (!any.ok) return { result: { ok: false, reason: 'bad_frame', detail: `bad Any: ${any.detail}` }, peerId: '' };
  if (any.typeUrl !== STRUCT_TYPE_URL) {
    return { result: { ok: false, reason: 'bad_frame', detail: `Any holds ${JSON.stringify(any.typeUrl.slice(0, 80))}` }, peerId: '' };
  }
  const s = decodeStruct(any.value, maxDepth);
  if (!s.ok) return { result: { ok: false, reason: s.reason, detail: s.detail }, peerId: '' };
  const idValue = s.fields[HEADER_PEER_METADATA_ID];
  const peerId = typeof idValue === 'string' ? idValue : '';
  const inner = s.fields[HEADER_PEER_METADATA];
  if (inner === undefined) return { result: { ok: false, reason: 'bad_frame', detail: `no ${HEADER_PEER_METADATA} in frame` }, peerId };
  if (inner === null || typeof inner !== 'object' || Array.isArray(inner)) {
    return { result: { ok: false, reason: 'not_struct', detail: `${HEADER_PEER_METADATA} is not a struct` }, peerId };
  }
  return { result: peerFromStruct(inner as Parameters<typeof peerFromStruct>[0]), peerId };
}
