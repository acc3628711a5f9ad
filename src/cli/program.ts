/**
 * The `meshtel` command line: one commander program, one register function per command
 * (src/cli/commands/*.ts), and one place that turns errors into exit codes:
 * 0 ok, 1 a MeshtelError (its MESHTEL_ERR_* code printed), 2 a usage error.
 */
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { isMeshtelError } from '../core/errors.js';
import { registerDecodeCommand } from './commands/decode.js';
import { registerEncodeCommand } from './commands/encode.js';
import { registerInjectCommand } from './commands/inject.js';
import { registerLintCommand } from './commands/lint.js';
import { registerStatCommand } from './commands/stat.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerSidecarCommand } from './commands/sidecar.js';
import { registerCertsCommand } from './commands/certs.js';
import { registerConsoleCommand } from './commands/console.js';

// src/cli and dist/cli are both two levels below the package root.
const PACKAGE_VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

/** Exit code for success. */
export const EXIT_OK = 0;
/** Exit code for a failed command (bad input, unreachable endpoint, ...). */
export const EXIT_ERROR = 1;
/** Exit code for a usage error (unknown flag, missing argument). */
export const EXIT_USAGE = 2;

/** Build the program with every command registered. Settings are set before commands so they inherit. */
export function createProgram(): Command {
  const program = new Command('meshtel')
    .description('Istio Telemetry V2 (metadata exchange, istio_* metrics, tracing) for Node.js sidecars and services')
    // -V/--version at the top level only; with positional options a subcommand's own --version (encode's
    // version label) is its own, not the program's.
    .version(PACKAGE_VERSION, '-V, --version')
    .enablePositionalOptions()
    .exitOverride()
    .showHelpAfterError('(run with --help for usage and examples)')
    .configureHelp({ sortSubcommands: true });
  registerDecodeCommand(program);
  registerEncodeCommand(program);
  registerInjectCommand(program);
  registerLintCommand(program);
  registerStatCommand(program);
  registerDemoCommand(program);
  registerConsoleCommand(program);
  // Owned by the sidecar engineer (src/cli/commands/sidecar.ts, certs.ts).
  registerSidecarCommand(program);
  registerCertsCommand(program);
  return program;
}

/**
 * Run the CLI with `argv` (node and script first, as process.argv) and return the exit code.
 * MeshtelErrors print `meshtel: <CODE>: <message>`; commander already printed usage errors.
 */
export async function runCli(argv: readonly string[]): Promise<number> {
  const program = createProgram();
  try {
    await program.parseAsync([...argv]);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and --version exit 0; everything commander rejects is a usage error.
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (isMeshtelError(err)) {
      process.stderr.write(`meshtel: ${err.code}: ${err.message}\n`);
      return err.code === 'MESHTEL_ERR_CLI_USAGE' ? EXIT_USAGE : EXIT_ERROR;
    }
    process.stderr.write(`meshtel: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    return EXIT_ERROR;
  }
}
