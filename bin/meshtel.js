#!/usr/bin/env node
// The `meshtel` command: runs the compiled CLI in dist/. `npm ci`/`npm install` in a checkout builds dist
// (the "prepare" script), so `npx meshtel ...` works there too and starts without a TypeScript loader;
// after editing src/, run `npm run build` again (or `npm run meshtel -- ...`, which runs the sources via tsx).
import('../dist/cli/main.js').catch((err) => {
  console.error(`meshtel: cannot load dist/cli/main.js (${err.message}); run "npm run build" first`);
  process.exit(1);
});
