import { describe, expect, it } from 'vitest';
import { parseExpositionFamilies } from '../../src/stats/exposition-parser.js';
import { renderParsedFamilies, withoutEof } from '../../src/sidecar/merged-scrape.js';
import { formatOfContentType } from '../../src/stats/media-types.js';

async function collect(chunks: string[]): Promise<string> {
  async function* src(): AsyncGenerator<Buffer> {
    for (const c of chunks) yield Buffer.from(c);
  }
  const out: Buffer[] = [];
  for await (const c of withoutEof(src())) out.push(c);
  return Buffer.concat(out).toString();
}

describe('withoutEof()', () => {
  it.each([
    [['a 1\n# EOF\n']],
    [['a 1\n# E', 'OF\n']],
    [['a 1\n', '#', ' ', 'EOF', '\n']],
    [['a', ' 1\n', '# EOF\n', '']],
  ])('drops the final # EOF however it is split (%j)', async (chunks) => {
    expect(await collect(chunks)).toBe('a 1\n');
  });

  it('keeps a stream that does not end with # EOF unchanged', async () => {
    expect(await collect(['a 1\n', 'b 2\n'])).toBe('a 1\nb 2\n');
    expect(await collect(['x'])).toBe('x');
  });
});

describe('formatOfContentType()', () => {
  it.each([
    ['application/openmetrics-text; version=1.0.0; charset=utf-8', 'openmetrics'],
    ['Application/OpenMetrics-Text', 'openmetrics'],
    ['text/plain; version=0.0.4', 'text'],
    [undefined, 'text'],
  ] as const)('%s is %s', (ct, format) => {
    expect(formatOfContentType(ct)).toBe(format);
  });
});

describe('parseExpositionFamilies() + renderParsedFamilies()', () => {
  const convert = (text: string, from: 'text' | 'openmetrics', to: 'text' | 'openmetrics'): string => {
    const r = parseExpositionFamilies(text, from);
    if (!r.ok) throw new Error(`line ${r.line}: ${r.reason}`);
    return renderParsedFamilies(r.families, from, to);
  };

  it('renders OpenMetrics types and names in text (unknown → untyped, info → gauge, no UNIT)', () => {
    const om = '# TYPE a unknown\na 1\n# TYPE b info\nb_info{v="1"} 1\n# TYPE c gauge\n# UNIT c seconds\nc 2\n# EOF\n';
    expect(convert(om, 'openmetrics', 'text')).toBe('# TYPE a untyped\na 1\n# TYPE b_info gauge\nb_info{v="1"} 1\n# TYPE c gauge\nc 2\n');
  });

  it('gives a text counter without _total the OpenMetrics sample suffix', () => {
    expect(convert('# TYPE hits counter\nhits 3\n', 'text', 'openmetrics')).toBe('# TYPE hits counter\nhits_total 3\n');
  });

  it('keeps samples without metadata untyped in both formats', () => {
    expect(convert('loose{a="b"} 1\n', 'text', 'openmetrics')).toBe('loose{a="b"} 1\n');
  });

  it('escapes HELP for OpenMetrics (quotes too) and text', () => {
    const text = '# HELP q say "hi" \\\\ now\n# TYPE q gauge\nq 1\n';
    expect(convert(text, 'text', 'openmetrics')).toContain('# HELP q say \\"hi\\" \\\\ now\n');
    expect(convert(text, 'text', 'text')).toContain('# HELP q say "hi" \\\\ now\n');
  });

  it.each([
    ['text', '# EOF\n', '# EOF in the text format'],
    ['text', '# UNIT a s\na 1\n', '# UNIT in the text format'],
    ['openmetrics', 'a 1\n', 'no # EOF (page cut short)'],
    ['openmetrics', 'a 1\n\n# EOF\n', 'empty line'],
    ['openmetrics', '# free comment\n# EOF\n', 'unknown comment'],
    ['text', 'a 1 2 3\n', 'malformed sample'],
    ['text', '1a 1\n', 'malformed sample'],
    ['text', 'a 1 # {x="y"} 1\n', 'malformed sample'],
    ['text', '# TYPE a Counter!\n', 'bad type "Counter!"'],
  ] as const)('refuses a %s page %j (%s)', (format, text, reason) => {
    expect(parseExpositionFamilies(text, format)).toMatchObject({ ok: false, reason });
  });
});
