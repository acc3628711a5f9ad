import { describe, expect, it } from 'vitest';
import { createProgram, EXIT_ERROR, EXIT_OK, EXIT_USAGE } from '../../src/cli/program.js';
import { runMeshtel } from './support.js';

function help(name: string): string {
  const cmd = createProgram().commands.find((c) => c.name() === name);
  if (!cmd) throw new Error(`no command ${name}`);
  let text = '';
  cmd.configureOutput({ writeOut: (s) => (text += s), writeErr: (s) => (text += s) });
  cmd.outputHelp();
  return text;
}

describe('meshtel program', () => {
  it.each(['decode', 'encode', 'inject', 'lint', 'stat', 'demo'])('`meshtel %s --help` has usage and examples', (name) => {
    const text = help(name);
    expect(text).toContain(`Usage: meshtel ${name}`);
    expect(text).toMatch(/Examples:\n\s+\$ (meshtel|npm start)/);
  });

  it('registers the sidecar engineer’s sidecar and certs commands', () => {
    const names = createProgram().commands.map((c) => c.name());
    expect(names).toEqual(expect.arrayContaining(['sidecar', 'certs', 'decode', 'encode', 'inject', 'lint', 'stat', 'demo']));
  });

  it('uses exit codes 0 ok, 1 error, 2 usage', () => {
    expect([EXIT_OK, EXIT_ERROR, EXIT_USAGE]).toEqual([0, 1, 2]);
  });

  it.each([
    [['--version'], 0, '0.1.0'],
    [['no-such-command'], 2, "unknown command 'no-such-command'"],
    [['decode', '--bogus-flag'], 2, "unknown option '--bogus-flag'"],
  ])('meshtel %j exits %i', async (args, code, text) => {
    const run = await runMeshtel(args);
    expect(run.code).toBe(code);
    expect(run.stdout + run.stderr).toContain(text);
  });
});
