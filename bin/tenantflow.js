#!/usr/bin/env node
// Runs the compiled CLI (npm run build). During development use `npm run dev`.
import('../dist/cli.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('tenantflow: not built yet, run `npm run build` first\n')
    process.exit(1)
  }
  throw err
})
