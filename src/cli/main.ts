/**
 * Entry point of the `meshtel` binary (bin/meshtel.js loads the compiled copy; `npm run meshtel --`
 * runs this file through tsx). The exit code is set, not forced, so pending output is flushed.
 */
import { runCli } from './program.js';

process.exitCode = await runCli(process.argv);
