#!/usr/bin/env node
// Published entry point: runs the compiled CLI (npm run build). From a git checkout use `npm run meshtel --`.
import('../dist/cli/main.js').catch((err) => {
  console.error(`meshtel: cannot load dist/cli/main.js (${err.message}); run "npm run build" first`);
  process.exit(1);
});
