// The built console (dist/console, made by `npm run build`): read once at startup into memory, so a
// request can only ever name one of these files — no path from the URL reaches the filesystem.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface Asset {
  body: Buffer
  type: string
}

export interface ConsoleAssets {
  /** null when the console has not been built. */
  index: Buffer | null
  /** File name under /console/assets/ → content; every name carries a content hash. */
  files: Map<string, Asset>
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
}

/** src/app/console → repo root; dist/app/console → repo root: both resolve to <repo>/dist/console. */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL('../../../dist/console/', import.meta.url))

export function loadConsoleAssets(dir = DEFAULT_CONSOLE_DIR): ConsoleAssets {
  const indexPath = join(dir, 'index.html')
  const files = new Map<string, Asset>()
  if (!existsSync(indexPath)) return { index: null, files }
  const assetDir = join(dir, 'assets')
  if (existsSync(assetDir)) {
    for (const name of readdirSync(assetDir)) {
      const type = TYPES[extname(name)]
      if (!type || !/^[A-Za-z0-9._-]{1,128}$/.test(name)) continue
      files.set(name, { body: readFileSync(join(assetDir, name)), type })
    }
  }
  return { index: readFileSync(indexPath), files }
}
