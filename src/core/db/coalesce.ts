// Post-arrival read coalescing: concurrent reads of fresh values are answered by one statement for
// many keys instead of one statement each. A read joins the next statement to be sent, never one
// already sent, so every answer comes from a statement that started after the read was asked for: a
// change committed before that (in any process) is in the answer. At most `maxInFlight` statements run
// at once; reads arriving meanwhile wait and go together in the next, at most `maxKeys` distinct keys
// per statement (reads of one key share its answer). The first read of a quiet moment is sent at once,
// or, with `nextTurn` (a store that answers synchronously, where nothing is ever in flight), on the
// next turn of the event loop: reads asked in the same turn (requests parsed from one batch of socket
// events) go together, and each of them was asked before the statement runs.
// Caveat: an error fails every read of the statement it happened in; the next statement is still sent.

interface Waiter<V> {
  resolve: (v: V | null) => void
  reject: (err: unknown) => void
}

type Batch<K, V> = Map<K, Waiter<V>[]>

export const MAX_COALESCED_KEYS = 100

export class ReadCoalescer<K, V> {
  /** Batches not yet sent, oldest first; a read only ever joins one of these. */
  private readonly pending: Batch<K, V>[] = []
  private inFlight = 0
  private scheduled = false

  constructor(
    /** One statement for the keys; a key missing from the map is answered null. */
    private readonly run: (keys: K[]) => Promise<Map<K, V>>,
    private readonly maxKeys = MAX_COALESCED_KEYS,
    private readonly maxInFlight = 1,
    private readonly nextTurn = false,
  ) {}

  read(key: K): Promise<V | null> {
    return new Promise<V | null>((resolve, reject) => {
      const waiter = { resolve, reject }
      const joined = this.pending.find((b) => b.has(key))
      if (joined) joined.get(key)!.push(waiter)
      else {
        let last = this.pending[this.pending.length - 1]
        if (!last || last.size >= this.maxKeys) this.pending.push((last = new Map()))
        last.set(key, [waiter])
      }
      if (this.inFlight >= this.maxInFlight) return
      if (!this.nextTurn) this.send()
      else if (!this.scheduled) {
        this.scheduled = true
        setImmediate(() => {
          this.scheduled = false
          if (this.inFlight < this.maxInFlight) this.send()
        })
      }
    })
  }

  private send(): void {
    const batch = this.pending.shift()
    if (!batch) return
    this.inFlight++
    let answer: Promise<Map<K, V>>
    try {
      answer = this.run([...batch.keys()])
    } catch (err) {
      answer = Promise.reject(err)
    }
    answer.then(
      (values) => {
        for (const [key, waiters] of batch) {
          const v = values.get(key) ?? null
          for (const w of waiters) w.resolve(v)
        }
        this.done()
      },
      (err) => {
        for (const waiters of batch.values()) for (const w of waiters) w.reject(err)
        this.done()
      },
    )
  }

  private done(): void {
    this.inFlight--
    this.send()
  }
}
