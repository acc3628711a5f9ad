/**
 * `meshtel decode <value>`: what a peer sent, as readable JSON (src/cli/decode.ts).
 */
import type { Command } from 'commander';
import { ConfigError, quote } from '../../core/errors.js';
import { decodeValue } from '../decode.js';
import type { DecodeKind } from '../decode.js';
import { readInput } from '../io.js';

const KINDS: Record<string, DecodeKind> = {
  mx: 'x-envoy-peer-metadata', header: 'x-envoy-peer-metadata', 'x-envoy-peer-metadata': 'x-envoy-peer-metadata',
  baggage: 'baggage',
  tcp: 'tcp-frame', frame: 'tcp-frame', 'tcp-frame': 'tcp-frame',
  id: 'x-envoy-peer-metadata-id', 'node-id': 'x-envoy-peer-metadata-id', 'x-envoy-peer-metadata-id': 'x-envoy-peer-metadata-id',
};

/** Register `meshtel decode`. */
export function registerDecodeCommand(program: Command): void {
  program
    .command('decode')
    .description('decode an x-envoy-peer-metadata value, a baggage value, a TCP MX frame (hex) or a node id into JSON')
    .argument('[value]', 'the value; "-" or nothing reads stdin')
    .option('--as <kind>', 'mx | baggage | tcp | id (default: detected)')
    .option('--compact', 'one-line JSON')
    .addHelpText(
      'after',
      `
Detection: hex starting with 3d230467 is a TCP frame, sidecar~/router~/waypoint~ a node id, base64 an
x-envoy-peer-metadata value, anything else baggage. The output names the payload profile (flat ≤1.23,
reduced 1.24+ incl. 1.29, reduced-identity with IDENTITY), the peer labels it yields (unknown/latest where a field is
missing) and notes on anything unusual. Exit 1 with MESHTEL_ERR_DECODE when the value is malformed.

Examples:
  $ meshtel decode ChIKBWlzdGlvEgkaB3NpZGVjYXI...
  $ meshtel decode 'k8s.deployment.name=productpage-v1,service.name=productpage,k8s.namespace.name=default'
  $ meshtel decode 3d230467000002230a2a74797065...
  $ kubectl logs deploy/reviews-v1 -c istio-proxy | grep -o 'x-envoy-peer-metadata: [^ ]*' | cut -d' ' -f2 | meshtel decode -`,
    )
    .action(async (value: string | undefined, flags: { as?: string; compact?: boolean }) => {
      let kind: DecodeKind | undefined;
      if (flags.as !== undefined) {
        kind = KINDS[flags.as.toLowerCase()];
        if (kind === undefined) throw new ConfigError('MESHTEL_ERR_CLI_USAGE', `--as must be mx, baggage, tcp or id, got ${quote(flags.as)}`, { field: 'as' });
      }
      if (value === undefined && process.stdin.isTTY === true) {
        // Nothing given and nothing piped: waiting on the terminal would look like a hang.
        throw new ConfigError('MESHTEL_ERR_CLI_USAGE', 'give a value to decode, or pipe it on stdin', { field: 'value' });
      }
      const text = value === undefined || value === '-' ? (await readInput('-')).trim() : value;
      if (text.trim() === '') throw new ConfigError('MESHTEL_ERR_CLI_USAGE', 'give a value to decode (or pipe it on stdin)', { field: 'value' });
      const report = decodeValue(text, kind);
      process.stdout.write(`${JSON.stringify(report, null, flags.compact ? 0 : 2)}\n`);
    });
}
