// Name → processor. Built-in processors are registered in builtin.ts; the engine looks names up
// here when it loads templates (unknown names stop startup) and when it runs steps.
import type { Processor } from './types.js'

export class ProcessorRegistry {
  private readonly byName = new Map<string, Processor<any>>()

  register(p: Processor<any>): this {
    if (!/^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$/.test(p.name)) throw new Error(`invalid processor name ${p.name}`)
    if (this.byName.has(p.name)) throw new Error(`processor ${p.name} registered twice`)
    this.byName.set(p.name, p)
    return this
  }

  get(name: string): Processor<any> | undefined {
    return this.byName.get(name)
  }

  names(): string[] {
    return [...this.byName.keys()].sort()
  }
}
