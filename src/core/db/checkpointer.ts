// WAL checkpoints off the event loop for the embedded store (issue 12). SQLite checkpoints in the
// connection that commits: when the WAL passes 1,000 pages, that commit copies them into the database
// file and syncs both files, a 2-10 ms stall of the event loop on a real disk (a sixth of the trigger
// path's time under load). One worker thread per process holds its own connection to each open
// database file and runs a PASSIVE checkpoint every 20 ms, so the copying and syncing happen there.
// The committing connection's own checkpoint still runs, at 4,000 pages (database.ts; a checkpoint
// that finds every page copied is what lets the WAL start again from its beginning), but finds little
// left to do.
// PASSIVE never waits for, nor blocks, a writer or a reader: this changes when pages reach the
// database file, never what a transaction sees or whether it commits. Should the thread fail, the
// commits' own checkpoints do all of it, as without it.
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'

const INTERVAL_MS = 20

// Plain JavaScript run as the worker's script (no loader, no build step): its own better-sqlite3
// connection per file, opened on 'open', closed (and acknowledged) on 'close'.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
const open = new Map()
parentPort.on('message', (m) => {
  if (m.open) {
    try {
      const db = new Database(m.open, { fileMustExist: true, timeout: 0 })
      db.pragma('synchronous = NORMAL')
      open.set(m.open, db)
    } catch {}
  } else if (m.close) {
    try { open.get(m.close)?.close() } catch {}
    open.delete(m.close)
    parentPort.postMessage({ closed: m.id })
  }
})
setInterval(() => {
  for (const db of open.values()) {
    try { db.pragma('wal_checkpoint(PASSIVE)') } catch {}
  }
}, workerData.intervalMs)
`

let worker: Worker | null = null
let failed = false
/** Open handles per file: the thread keeps one connection per file, however many handles this process has. */
const watched = new Map<string, number>()
const pendingCloses = new Map<number, () => void>()
let nextId = 0

function thread(): Worker | null {
  if (failed) return null
  if (worker) return worker
  try {
    worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // The parent's flags (a TypeScript loader in development) are not needed to run plain JavaScript.
      execArgv: [],
      workerData: { driver: createRequire(import.meta.url).resolve('better-sqlite3'), intervalMs: INTERVAL_MS },
    })
  } catch {
    failed = true
    return null
  }
  // Never what keeps a process alive: a process with nothing else to do exits as it would without it.
  worker.unref()
  worker.on('message', (m: { closed?: number }) => {
    if (m.closed === undefined) return
    pendingCloses.get(m.closed)?.()
    pendingCloses.delete(m.closed)
    if (pendingCloses.size === 0) worker?.unref()
  })
  const stop = () => {
    failed = true
    worker = null
    for (const done of pendingCloses.values()) done()
    pendingCloses.clear()
  }
  worker.on('error', stop)
  worker.on('exit', stop)
  return worker
}

/**
 * Starts background checkpoints of the database file at `path` (already open, in WAL mode). The
 * returned function stops them and resolves once the thread's connection to the file is closed, so
 * the caller closes its own last and removing the file afterwards is safe.
 */
export function checkpointInBackground(path: string): () => Promise<void> {
  const w = thread()
  if (!w) return async () => {}
  const count = watched.get(path) ?? 0
  watched.set(path, count + 1)
  if (count === 0) w.postMessage({ open: path })
  let stopped = false
  return () => {
    if (stopped) return Promise.resolve()
    stopped = true
    const left = (watched.get(path) ?? 1) - 1
    if (left > 0) {
      watched.set(path, left)
      return Promise.resolve()
    }
    watched.delete(path)
    const current = worker
    if (!current) return Promise.resolve()
    const id = nextId++
    return new Promise<void>((resolve) => {
      pendingCloses.set(id, resolve)
      // Referenced until it answers, or a process awaiting this close would exit before the answer.
      current.ref()
      current.postMessage({ close: path, id })
    })
  }
}
