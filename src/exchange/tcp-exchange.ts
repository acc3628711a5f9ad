/**
 * The TCP metadata exchange (spec §3; P release-1.29 `source/extensions/filters/network/metadata_exchange`):
 * once ALPN has chosen `istio-peer-exchange`, each side writes its frame before its first application
 * byte and reads (and drains) the peer's frame from the inbound stream. The sidecar owns the sockets;
 * this object owns the bytes: our frame, encoded once, and a parser per connection.
 */
import { ConfigError, quote } from '../core/errors.js';
import { formatNodeId } from '../metadata/node-id.js';
import { ALPN_PEER_EXCHANGE, DEFAULT_MAX_FRAME_BYTES, createTcpFrameParser, encodeTcpFrame } from '../metadata/tcp-frame.js';
import type { TcpFrameParser, TcpParseStep } from '../metadata/tcp-frame.js';
import { DEFAULT_PAYLOAD_PROFILE } from '../metadata/types.js';
import type { PayloadProfile, WorkloadMetadata } from '../metadata/types.js';
import { createExchangeCounters } from './counters.js';
import type { ExchangeCounters } from './counters.js';

/** Options of {@link createTcpMetadataExchange}. */
export interface TcpMetadataExchangeOptions {
  /** This workload. */
  local: WorkloadMetadata;
  /** Node id carried in the frame; default `formatNodeId(local)`. */
  nodeId?: string;
  /** Payload profile of our frame; default `reduced-1.29` (what an Istio 1.29 sidecar sends: locality, no IDENTITY). */
  profile?: PayloadProfile;
  /** Largest frame payload accepted, and the cap on our own; default 8192. */
  maxFrameBytes?: number;
  /** Pod labels sent in LABELS besides the standard ones (`PILOT_MX_ADDITIONAL_LABELS`). */
  additionalLabels?: readonly string[];
}

/** The TCP exchange. */
export interface TcpMetadataExchange {
  /** Our frame (magic, length, Any{Struct}), computed once. Write it before the first application byte. */
  readonly frame: Buffer;
  /** The ALPN protocol that enables the exchange. */
  readonly ALPN: typeof ALPN_PEER_EXCHANGE;
  /** Node id inside our frame. */
  readonly nodeId: string;
  /** A parser for one connection's inbound stream; full decodes are counted in `counters`. */
  createParser(): TcpFrameParser;
  /** Decode counter, read by the sidecar's self-metrics at scrape time (`meshtel_peer_decodes_total`). */
  readonly counters: ExchangeCounters;
}

/**
 * Create the TCP exchange. Throws ConfigError `MESHTEL_ERR_ENCODE` when our own frame is larger than
 * `maxFrameBytes` (a peer with the same limit would refuse it).
 */
export function createTcpMetadataExchange(options: TcpMetadataExchangeOptions): TcpMetadataExchange {
  const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `maxFrameBytes must be a positive integer, got ${quote(maxFrameBytes)}`, {
      field: 'maxFrameBytes',
      value: maxFrameBytes,
    });
  }
  const nodeId = options.nodeId ?? formatNodeId(options.local);
  const frame = encodeTcpFrame(options.local, nodeId, options.profile ?? DEFAULT_PAYLOAD_PROFILE, { additionalLabels: options.additionalLabels ?? [] });
  if (frame.length - 8 > maxFrameBytes) {
    throw new ConfigError('MESHTEL_ERR_ENCODE', `local istio-peer-exchange frame is ${frame.length - 8} bytes, over maxFrameBytes ${maxFrameBytes}`, {
      field: 'maxFrameBytes',
      value: frame.length - 8,
    });
  }
  const counters = createExchangeCounters();

  return {
    frame,
    ALPN: ALPN_PEER_EXCHANGE,
    nodeId,
    counters,
    createParser() {
      const inner = createTcpFrameParser({ maxBytes: maxFrameBytes });
      let finished = false;
      // Count each connection once: later pushes pass application bytes through.
      const once = (step: TcpParseStep): TcpParseStep => {
        if (!step.done || finished) return step;
        finished = true;
        const r = step.result;
        if (r.ok || (r.reason !== 'not_mx' && r.reason !== 'truncated' && r.reason !== 'too_large')) counters.decodes++;
        return step;
      };
      return {
        push: (chunk) => once(inner.push(chunk)),
        end: () => once(inner.end()),
      };
    },
  };
}
