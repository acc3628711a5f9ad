/**
 * Entry point of the `meshtel` binary (bin/meshtel.js loads the compiled copy; `npm run meshtel --`
 * runs this file through tsx). The exit code is set, not forced, so pending output is flushed.
 */
import { runCli } from './program.js';

process.exitCode = await runCli(process.argv);
// The command has finished and closed everything it opened (a sidecar's trace drain is bounded by its shutdown
// timeout), but third-party timers may outlive it: the OTLP exporter's retries for abandoned batches are not
// unref'd and would hold the process for the rest of their 10 s export timeout. Exit once nothing of ours is
// left; the timer is unref'd, so it fires only when something lingers. It lives here, not in a command, so that
// commands run in-process (tests, embedding programs) never end their host process.
setTimeout(() => process.exit(), 100).unref();
