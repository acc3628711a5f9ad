/**
 * Small I/O helpers shared by the commands: reading a file or stdin (`-`), and printing.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../core/errors.js';

/** Read a whole file, or stdin when `path` is `-`. Errors are MESHTEL_ERR_CONFIG_FILE naming the path. */
export async function readInput(path: string): Promise<string> {
  if (path === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError('MESHTEL_ERR_CONFIG_FILE', `cannot read ${path}: ${(err as Error).message}`, { path }, { cause: err });
  }
}

/** Write a line (or block) to stdout. */
export function println(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}
