// Parsers shared by the ops tests: the configuration reference table and the Dockerfile.

const NAME = '[A-Z][A-Z0-9_]*'

/** Every variable name in the first column of the reference table. */
export function documentedVariables(markdown: string): Set<string> {
  const names = new Set<string>()
  for (const line of markdown.split('\n')) {
    if (!line.startsWith('| `')) continue
    const first = line.split('|')[1]!
    for (const m of first.matchAll(new RegExp(`\`(${NAME})\``, 'g'))) names.add(m[1]!)
  }
  return names
}

export interface Instruction {
  stage: number
  op: string
  args: string
}

/** Dockerfile instructions in order (continuations joined, comments dropped), with their stage index. */
export function parseDockerfile(text: string): { stages: string[]; instructions: Instruction[] } {
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  const stages: string[] = []
  const instructions: Instruction[] = []
  for (const line of lines) {
    const [, op, args] = /^(\S+)\s+(.*)$/.exec(line) ?? []
    if (!op) continue
    if (op.toUpperCase() === 'FROM') stages.push(/\bAS\s+(\S+)/i.exec(args!)?.[1] ?? `stage${stages.length}`)
    else instructions.push({ stage: stages.length - 1, op: op.toUpperCase(), args: args!.replace(/\s+/g, ' ').trim() })
  }
  return { stages, instructions }
}

