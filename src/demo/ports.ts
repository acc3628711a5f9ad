/**
 * Port allocation for the demo: the mesh file must name every sidecar's inbound port before the
 * sidecars start, so those ports are chosen up front, either as free ports from the OS or as
 * consecutive ports from `--base-port`.
 */
import net from 'node:net';
import { ConfigError } from '../core/errors.js';

/** Ask the OS for `count` distinct free ports on `host` (all held open together, then released). */
export async function findFreePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, host, () => resolve());
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/** A source of ports: the next free one, or consecutive ones from a base. */
export interface PortPlan {
  /** Take the next port; 0 means "any free port" (only when no base port was given and `fixed` is false). */
  next(fixed?: boolean): number;
}

/**
 * Plan ports. With `basePort`, every listener gets the next consecutive port (reproducible URLs);
 * without it, the `reserved` free ports are handed out for listeners that must be known in advance
 * and every other listener binds port 0.
 */
export function createPortPlan(basePort: number | undefined, reserved: readonly number[]): PortPlan {
  let cursor = 0;
  let base = basePort;
  return {
    next(fixed = false) {
      if (base !== undefined) {
        if (base > 65535) throw new ConfigError('MESHTEL_ERR_CLI_USAGE', '--base-port leaves too few ports below 65536', { field: 'basePort' });
        return base++;
      }
      if (!fixed) return 0;
      const p = reserved[cursor++];
      if (p === undefined) throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', 'demo port plan ran out of reserved ports', {});
      return p;
    },
  };
}
