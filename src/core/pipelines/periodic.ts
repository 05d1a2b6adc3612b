// A background pass run every `intervalMs`, never overlapping itself; stop() waits for the pass in flight.
export class PeriodicTask {
  private timer: NodeJS.Timeout | null = null
  private busy: Promise<unknown> | null = null

  constructor(
    private readonly intervalMs: number,
    private readonly pass: () => Promise<unknown>,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** `keepAlive` keeps the process running for this timer (the scheduler in `tenantflow worker`). */
  start(opts: { runNow?: boolean; keepAlive?: boolean } = {}): void {
    if (this.timer) return
    const run = () => {
      if (this.busy) return
      this.busy = this.pass()
        .catch(this.onError)
        .finally(() => (this.busy = null))
    }
    if (opts.runNow) run()
    this.timer = setInterval(run, this.intervalMs)
    if (!opts.keepAlive) this.timer.unref()
  }

  /** Resolves when the pass in flight (if any) has finished; passes never reject (errors go to onError). */
  async settled(): Promise<void> {
    await this.busy
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    await this.busy
  }
}
