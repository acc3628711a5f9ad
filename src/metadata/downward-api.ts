/**
 * The Kubernetes downward-API files the injector mounts (`/etc/istio/pod/labels`, `/etc/istio/pod/annotations`):
 * one `key="value"` per line, the value quoted by Go's `strconv.Quote` (the kubelet's writer). A missing file is "no
 * labels"; a garbled one is a ConfigError naming the file and line.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, quote } from '../core/errors.js';

/** Default path of the downward-API labels file the injector mounts. */
export const DEFAULT_LABELS_PATH = '/etc/istio/pod/labels';
/** Default path of the downward-API annotations file. */
export const DEFAULT_ANNOTATIONS_PATH = '/etc/istio/pod/annotations';
/**
 * Read a Kubernetes downward-API file (`key="go-quoted value"` per line). A missing file gives
 * `undefined`; an unreadable or garbled one throws ConfigError `MESHTEL_ERR_CONFIG_FILE` naming the file.
 */
export function readDownwardApiFile(file: string): Record<string, string> | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError('MESHTEL_ERR_CONFIG_FILE', `cannot read downward-API file ${file}: ${(err as Error).message}`, { file }, { cause: err });
  }
  return parseDownwardApi(text, file);
}

/** Parse downward-API text; `file` is only used in error messages. */
export function parseDownwardApi(text: string, file = '<downward-api>'): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '') continue;
    const eq = line.indexOf('=');
    const key = eq > 0 ? line.slice(0, eq) : '';
    const raw = eq > 0 ? line.slice(eq + 1) : '';
    const value = key === '' ? undefined : unquoteGo(raw);
    if (value === undefined) {
      throw new ConfigError('MESHTEL_ERR_CONFIG_FILE', `downward-API file ${file} line ${i + 1} is not key="value": ${quote(line)}`, {
        file,
        line: i + 1,
      });
    }
    out[key] = value;
  }
  return out;
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"', "'": "'",
};

/**
 * Undo Go's `strconv.Quote`, which is how the kubelet writes downward-API values. Hand-written because
 * it is a dozen lines and no maintained npm package implements Go's escape set; `undefined` when malformed.
 */
function unquoteGo(raw: string): string | undefined {
  if (raw.length < 2 || raw[0] !== '"' || raw[raw.length - 1] !== '"') return undefined;
  const body = raw.slice(1, -1);
  const bytes: number[] = [];
  const pushStr = (s: string): void => {
    for (const b of Buffer.from(s, 'utf8')) bytes.push(b);
  };
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '"') return undefined;
    if (c !== '\\') {
      const cp = body.codePointAt(i)!;
      pushStr(String.fromCodePoint(cp));
      if (cp > 0xffff) i++;
      continue;
    }
    const e = body[++i];
    if (e === undefined) return undefined;
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      pushStr(simple);
    } else if (e === 'x' || e === 'u' || e === 'U') {
      const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
      const hex = body.slice(i + 1, i + 1 + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) return undefined;
      const v = parseInt(hex, 16);
      if (e === 'x') bytes.push(v);
      else if (v > 0x10ffff) return undefined;
      else pushStr(String.fromCodePoint(v));
      i += n;
    } else if (e >= '0' && e <= '7') {
      const oct = body.slice(i, i + 3);
      if (!/^[0-7]{3}$/.test(oct)) return undefined;
      const v = parseInt(oct, 8);
      if (v > 255) return undefined;
      bytes.push(v);
      i += 2;
    } else {
      return undefined;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
