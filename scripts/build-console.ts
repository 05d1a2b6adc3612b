// Builds the web console (console/ → dist/console) with esbuild: one hashed JS bundle and one
// hashed stylesheet, and an index.html that names them. No CDN, no remote fonts, no inline script.
// Run by `npm run build` after tsc; the console browser tests call buildConsole() when dist is stale.
import { build } from 'esbuild'
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const CONSOLE_SRC = join(ROOT, 'console')
export const CONSOLE_OUT = join(ROOT, 'dist', 'console')

/** Newest modification time under console/ (sources, styles, index template). */
export function newestSource(dir = CONSOLE_SRC): number {
  let newest = 0
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    const st = statSync(p)
    newest = Math.max(newest, st.isDirectory() ? newestSource(p) : st.mtimeMs)
  }
  return newest
}

export function consoleIsCurrent(): boolean {
  try {
    return statSync(join(CONSOLE_OUT, 'index.html')).mtimeMs >= newestSource()
  } catch {
    return false
  }
}

export async function buildConsole(): Promise<{ js: string; css: string }> {
  rmSync(CONSOLE_OUT, { recursive: true, force: true })
  const assets = join(CONSOLE_OUT, 'assets')
  mkdirSync(assets, { recursive: true })
  const result = await build({
    entryPoints: { app: join(CONSOLE_SRC, 'src', 'main.tsx'), styles: join(CONSOLE_SRC, 'src', 'styles.css') },
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['es2020'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    entryNames: '[name]-[hash]',
    outdir: assets,
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning',
  })
  const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p))
  const js = outputs.find((n) => n.startsWith('app-') && n.endsWith('.js'))
  const css = outputs.find((n) => n.startsWith('styles-') && n.endsWith('.css'))
  if (!js || !css) throw new Error('console build produced no bundle')
  for (const n of readdirSync(assets)) if (n.startsWith('styles-') && n.endsWith('.js')) rmSync(join(assets, n))
  const template = readFileSync(join(CONSOLE_SRC, 'index.html'), 'utf8')
  const html = template.replace('%APP_JS%', `/console/assets/${js}`).replace('%APP_CSS%', `/console/assets/${css}`)
  writeFileSync(join(CONSOLE_OUT, 'index.html'), html)
  return { js, css }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = await buildConsole()
  console.log(`console built: dist/console/assets/${out.js}, ${out.css}`)
}
