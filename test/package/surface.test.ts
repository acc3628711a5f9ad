/**
 * The public surface is deliberate (issue 12.4): every entry point of package.json "exports" exports exactly the
 * names listed here, each carrying TSDoc, and the package root re-exports every name of the metadata, stats and
 * embedding barrels. Adding or removing a public name therefore fails here until this list and docs/api.md (which
 * says why each name is public) are updated with it. Names are read with the TypeScript checker from the sources
 * dist/ is built from, so type-only exports count too.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const METADATA = [
  'ALPN_PEER_EXCHANGE',
  'DEFAULT_MAX_MX_BYTES',
  'DEFAULT_PAYLOAD_PROFILE',
  'DecodeBaggageOptions',
  'DecodeMxOptions',
  'HEADER_BAGGAGE',
  'HEADER_PEER_METADATA',
  'HEADER_PEER_METADATA_ID',
  'MX_MAGIC',
  'MxEncodeOptions',
  'PAYLOAD_PROFILES',
  'ParsedNodeId',
  'PayloadProfile',
  'PeerMetadata',
  'PeerResult',
  'ProxyType',
  'TcpFrameParser',
  'TcpFrameParserOptions',
  'TcpParseStep',
  'UnknownPeerReason',
  'WorkloadMetadata',
  'WorkloadMetadataInput',
  'WorkloadMetadataOptions',
  'WorkloadType',
  'createTcpFrameParser',
  'createWorkloadMetadata',
  'decodeBaggage',
  'decodeMxHeader',
  'encodeBaggage',
  'encodeMxHeader',
  'encodeTcpFrame',
  'formatEndpointMetadata',
  'formatNodeId',
  'loadWorkloadMetadata',
  'parseEndpointMetadata',
  'parseNodeId',
  'tryParseNodeId',
];

const STATS = [
  'BucketOverrides',
  'ConnectionAttributes',
  'CustomMetricDefinition',
  'DEFAULT_BUCKETS',
  'ExpositionFormat',
  'HTTP_LABELS',
  'HttpStreamAttributes',
  'ISTIO_BUILD',
  'ISTIO_REQUESTS_TOTAL',
  'ISTIO_REQUEST_BYTES',
  'ISTIO_REQUEST_DURATION_MILLISECONDS',
  'ISTIO_REQUEST_MESSAGES_TOTAL',
  'ISTIO_RESPONSE_BYTES',
  'ISTIO_RESPONSE_MESSAGES_TOTAL',
  'ISTIO_TCP_CONNECTIONS_CLOSED_TOTAL',
  'ISTIO_TCP_CONNECTIONS_OPENED_TOTAL',
  'ISTIO_TCP_RECEIVED_BYTES_TOTAL',
  'ISTIO_TCP_SENT_BYTES_TOTAL',
  'IstioStats',
  'IstioStatsOptions',
  'MESHTEL_PEER_UNKNOWN_TOTAL',
  'MESHTEL_SERIES_OVERFLOW_TOTAL',
  'MetricOverride',
  'MetricsResponse',
  'NativeHistogramOptions',
  'OPENMETRICS_CONTENT_TYPE',
  'PROMETHEUS_TEXT_CONTENT_TYPE',
  'PROTOBUF_CONTENT_TYPE',
  'RenderOptions',
  'Reporter',
  'ResponseFlag',
  'ResponseFlagName',
  'ServiceInfo',
  'SpecialCluster',
  'TCP_LABELS',
  'TagOverride',
  'TcpConnectionStats',
  'TelemetryConfig',
  'TelemetryMode',
  'createIstioStats',
  'createMetricsHandler',
  'createMetricsResponse',
  'formatResponseFlags',
  'parseTelemetry',
  'renderMetrics',
  'renderMetricsToString',
];

const EMBED_FASTIFY = ['MeshtelEmbedding', 'MeshtelEmbeddingOptions', 'MeshtelFastifyOptions', 'createMeshtelEmbedding', 'kubernetesServiceResolver', 'meshtelFastify'];
const EMBED = [...EMBED_FASTIFY, 'MeshtelInterceptorOptions', 'PROPAGATED_HEADERS', 'createMeshtelInterceptor'];

/** Names only the root has: errors, the logger shape, the exchange filters, tracing option types, the tap. */
const ROOT_OWN = [
  'ApiTracingOptions',
  'ConfigError',
  'DecodeError',
  'ERROR_CODES',
  'ExchangeCounters',
  'ExchangeExtract',
  'FoundPeer',
  'HeaderBag',
  'HeaderGetter',
  'HeaderRemover',
  'HeaderSetter',
  'HopSpan',
  'HopTracer',
  'HopTracingOptions',
  'HttpMetadataExchange',
  'HttpMetadataExchangeOptions',
  'Logger',
  'MeshtelError',
  'MeshtelErrorCode',
  'MetadataExchangeMode',
  'NodeHeaders',
  'PeerCache',
  'PeerCacheOptions',
  'PropagationFormat',
  'PropagationMethod',
  'SpanEndInfo',
  'SpanStartInfo',
  'TAP_CHANNEL_NAME',
  'TapHandlerOptions',
  'TapRecord',
  'TcpMetadataExchange',
  'TcpMetadataExchangeOptions',
  'createHttpMetadataExchange',
  'createPeerCache',
  'createTapHandler',
  'createTcpMetadataExchange',
  'isMeshtelError',
  'nodeHeaderGetter',
  'nodeHeaderRemover',
  'nodeHeaderSetter',
];

const TRACING = [
  'ApiTracingOptions',
  'HeaderBag',
  'HopSpan',
  'HopTracer',
  'HopTracingOptions',
  'METRIC_SPANS_DROPPED',
  'METRIC_SPANS_EXPORTED',
  'PropagationFormat',
  'SpanDropReason',
  'SpanEndInfo',
  'SpanStartInfo',
  'TRACER_NAME',
  'TracingExporterName',
  'TracingOptions',
  'createApiTracing',
  'createEnvoySampler',
  'createNoopTracing',
  'createTracing',
];

const SIDECAR = [
  'InboundPortOptions',
  'MeshConfig',
  'MeshFileInput',
  'PortProtocol',
  'ResolvedEndpoint',
  'ResolvedSidecarOptions',
  'ServiceListenerOptions',
  'ServiceRegistry',
  'ServiceRoute',
  'Sidecar',
  'SidecarBoundPorts',
  'SidecarOptions',
  'SidecarPorts',
  'TlsFiles',
  'startSidecar',
];

const EXPECTED: Record<string, readonly string[]> = {
  '.': [...METADATA, ...STATS, ...EMBED, ...ROOT_OWN],
  './embed': EMBED,
  './embed/fastify': EMBED_FASTIFY,
  './metadata': METADATA,
  './stats': STATS,
  './tracing': TRACING,
  './sidecar': SIDECAR,
};

/** package.json "exports" subpath → the source file dist/ builds it from. */
function entryPoints(): Map<string, string> {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { exports: Record<string, { import: string } | string> };
  const out = new Map<string, string>();
  for (const [subpath, entry] of Object.entries(pkg.exports)) {
    if (typeof entry === 'string') continue;
    out.set(subpath, path.join(root, entry.import.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts')));
  }
  return out;
}

interface Export {
  readonly name: string;
  /** The declaration's own TSDoc (the re-exported symbol's, not the export statement's). */
  readonly doc: string;
}

let exportsOf: Map<string, Export[]>;

beforeAll(() => {
  const entries = entryPoints();
  const program = ts.createProgram([...entries.values()], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  exportsOf = new Map();
  for (const [subpath, file] of entries) {
    const source = program.getSourceFile(file);
    if (source === undefined) throw new Error(`${subpath}: ${file} not in the program`);
    const moduleSymbol = checker.getSymbolAtLocation(source);
    if (moduleSymbol === undefined) throw new Error(`${subpath}: ${file} is not a module`);
    exportsOf.set(
      subpath,
      checker.getExportsOfModule(moduleSymbol).map((s) => {
        const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
        return { name: s.getName(), doc: ts.displayPartsToString(target.getDocumentationComment(checker)).trim() };
      }),
    );
  }
}, 60_000);

describe('the public surface', () => {
  it('lists every package.json entry point here', () => {
    expect([...entryPoints().keys()].sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(Object.entries(EXPECTED))('%s exports exactly the deliberate names', (subpath, expected) => {
    const names = exportsOf.get(subpath)!.map((e) => e.name);
    expect(names.sort()).toEqual([...new Set(expected)].sort());
  });

  it.each(Object.keys(EXPECTED))('every name %s exports carries TSDoc', (subpath) => {
    const undocumented = exportsOf
      .get(subpath)!
      .filter((e) => e.doc === '')
      .map((e) => e.name);
    expect(undocumented).toEqual([]);
  });

  it('the root re-exports every name of the metadata, stats and embedding barrels (one list per stage)', () => {
    const rootNames = new Set(exportsOf.get('.')!.map((e) => e.name));
    for (const subpath of ['./metadata', './stats', './embed']) {
      expect(exportsOf.get(subpath)!.map((e) => e.name).filter((n) => !rootNames.has(n)), subpath).toEqual([]);
    }
  });

  it('the runtime values match the declared ones (a type-only name is not a value and vice versa)', async () => {
    const mod = (await import('../../src/index.js')) as Record<string, unknown>;
    for (const name of Object.keys(mod)) expect(EXPECTED['.'], name).toContain(name);
    for (const name of ['createMeshtelEmbedding', 'decodeMxHeader', 'createIstioStats', 'ERROR_CODES']) expect(typeof mod[name]).not.toBe('undefined');
  });

  it('docs/api.md names every public name of every entry point', () => {
    const doc = readFileSync(path.join(root, 'docs/api.md'), 'utf8');
    const missing = [...new Set(Object.values(EXPECTED).flat())].filter((n) => !new RegExp(`\`${n}\``).test(doc));
    expect(missing).toEqual([]);
  });
});
