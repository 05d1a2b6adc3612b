// Reads the router sources and lists, per route, the error codes its handler can throw: ApiError
// literals in the route's registration, plus those of same-file helpers it uses (transitively),
// plus a few cross-module helpers whose codes are fixed. Used by openapi.test.ts to check that
// operations.ts declares exactly what each handler can produce.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ErrorCode } from '../../src/app/errors.js'

const ROUTERS = join(import.meta.dirname, '..', '..', 'src', 'app', 'routers')

/** Calls into other modules that throw catalogue errors. */
const CROSS_MODULE: [RegExp, ErrorCode[]][] = [
  [/\bdecodeCursor\(/, ['INVALID_CURSOR']],
  [/\brequireOrgAuth\(/, ['INVALID_API_KEY']],
  [/consume\('trigger'/, ['TRIGGER_RATE_LIMITED']],
  [/consume\('org'/, ['ORG_RATE_LIMITED']],
  [/new ApiError\(result\.code/, ['DAILY_QUOTA_EXCEEDED', 'MONTHLY_QUOTA_EXCEEDED', 'CONCURRENT_LIMIT_EXCEEDED']],
  [/new ApiError\(notConfigured\)/, ['NOT_FOUND']],
  [/\brequireUsableCredential\(/, ['INTEGRATION_NOT_CONFIGURED', 'CREDENTIAL_INVALID', 'CREDENTIAL_REJECTED', 'DESTINATION_NOT_ALLOWED', 'CREDENTIAL_UNUSABLE', 'SERVICE_UNAVAILABLE']],
]

const literalCodes = (text: string): string[] => [...text.matchAll(/new ApiError\('([A-Z_]+)'/g)].map((m) => m[1]!)

interface Block { name: string; text: string }

/** Top-level declarations (functions and consts) of a module, each with its source text. */
function topLevelBlocks(src: string): Block[] {
  const starts = [...src.matchAll(/^(?:export )?(?:async )?(?:function|const|class) (\w+)/gm)]
  return starts.map((m, i) => ({ name: m[1]!, text: src.slice(m.index, starts[i + 1]?.index ?? src.length) }))
}

export function handlerCodesByRoute(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>()
  for (const file of readdirSync(ROUTERS).filter((f) => f.endsWith('.ts'))) {
    const src = readFileSync(join(ROUTERS, file), 'utf8')
    const blocks = topLevelBlocks(src)
    const helperCodes = new Map<string, Set<string>>()
    const codesOf = (text: string, seen: Set<string>): Set<string> => {
      const codes = new Set(literalCodes(text))
      for (const [re, cs] of CROSS_MODULE) if (re.test(text)) cs.forEach((c) => codes.add(c))
      for (const b of blocks) {
        if (seen.has(b.name) || !new RegExp(`\\b${b.name}\\b`).test(text)) continue
        if (!helperCodes.has(b.name)) helperCodes.set(b.name, codesOf(b.text, new Set([...seen, b.name])))
        helperCodes.get(b.name)!.forEach((c) => codes.add(c))
      }
      return codes
    }
    const routes = [...src.matchAll(/\bapp\.(get|post|put|patch|delete)\(\s*'([^']+)'/g)]
    routes.forEach((m, i) => {
      // The route's text runs to the next registration or the end of the enclosing function.
      const end = routes[i + 1]?.index ?? src.indexOf('\n}\n', m.index)
      const text = src.slice(m.index, end === -1 ? src.length : end)
      const registering = blocks.find((b) => src.indexOf(b.text) <= m.index! && m.index! < src.indexOf(b.text) + b.text.length)
      out.set(`${m[1]!.toUpperCase()} ${m[2]}`, codesOf(text, new Set(registering ? [registering.name] : [])))
    })
  }
  return out
}
