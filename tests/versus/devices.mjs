// N simulated automerge-repo devices in one node process, for the tpsync
// side-by-side benchmark.
//
//   node devices.mjs --job JOB.json [--timeout-s 300]
//
// JOB.json:
//   {"mode": "initial" | "edit" | "sync",
//    "server": "ws://127.0.0.1:PORT",
//    "devices": [{"id": "d0", "storage": "/abs/dir",
//                 "docs": [{"name": "...", "url": "automerge:...",
//                           "heads": ["hex", ...], "changes": "/abs/path" | null}]}]}
//
// Every device is an independent Repo with its own NodeFSStorageAdapter(dir)
// and, when online, its own WebSocketClientAdapter (exported by
// @automerge/automerge-repo-network-websocket 2.5.6 also as
// BrowserWebSocketClientAdapter; it runs on node through `isomorphic-ws` = `ws`).
// The repos use automerge-repo's defaults (random peer id, default share
// policy, 100 ms save throttle, persisted sync states), as a client app would.
//
// stdout: one line per device as it finishes, {"id","ms","ok"[,"error"]},
// then {"done":true,"devices":N,"failed":K}. Exit code 0 iff K = 0.
// See README.md for what "done" means in each mode.

import fs from "node:fs"
import { monitorEventLoopDelay } from "node:perf_hooks"
import * as A from "@automerge/automerge"
import { Repo, decodeHeads } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import { parseArgs, required, readJson, emit, drainStdout, sameHeads, sortedHeads, sleep, debugLog } from "./common.mjs"

console.log = console.info = console.warn = (...a) => console.error(...a)

// On node, WebSocketClientAdapter's "error" listener rethrows any socket error
// but ECONNREFUSED (e.g. ECONNRESET when the server drops a busy client),
// which would end the whole process with its N devices. In a browser such a
// throw only reaches the console; do the same: log it and go on (the adapter
// reconnects by itself on "close").
process.on("uncaughtException", err => {
  console.error("uncaught exception (ignored):", err?.stack ?? err)
})

const args = parseArgs()
const job = readJson(required(args, "job"))
const timeoutMs = Number(args["timeout-s"] ?? 300) * 1000
const mode = job.mode
if (!["initial", "edit", "sync"].includes(mode)) {
  process.stderr.write(`unknown mode ${mode}\n`)
  process.exit(2)
}
if (mode !== "edit" && !job.server) {
  process.stderr.write(`mode ${mode} needs "server"\n`)
  process.exit(2)
}

/**
 * NodeFSStorageAdapter that also counts its writes in flight, so that the
 * process can wait, before it exits, for the saves automerge-repo schedules by
 * itself (throttled document saves, sync states). Behaviour is unchanged.
 */
class TrackedNodeFS extends NodeFSStorageAdapter {
  inFlight = 0
  lastActivity = performance.now()
  async #track(p) {
    this.inFlight++
    try {
      return await p
    } finally {
      this.inFlight--
      this.lastActivity = performance.now()
    }
  }
  save(key, data) {
    return this.#track(super.save(key, data))
  }
  remove(key) {
    return this.#track(super.remove(key))
  }
  removeRange(prefix) {
    return this.#track(super.removeRange(prefix))
  }
}

class Timeout extends Error {}

/** Rejects with a Timeout after `ms`, unless `promise` settles first. */
function withTimeout(promise, ms, what) {
  let timer
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Timeout(`timeout after ${ms / 1000} s ${what}`)), ms)
  })
  return Promise.race([promise, t]).finally(() => clearTimeout(timer))
}

const hexHeads = handle => A.getHeads(handle.doc())

/**
 * Resolves when the local document has exactly `expected` heads. Uses the
 * document carried by "heads-changed": a handle emits it for a document that
 * arrives from the network before it switches to "ready".
 */
function localHeadsReach(handle, expected) {
  return new Promise(resolve => {
    const onChange = ({ doc }) => {
      if (sameHeads(A.getHeads(doc), expected)) {
        handle.off("heads-changed", onChange)
        resolve()
      }
    }
    handle.on("heads-changed", onChange)
    if (handle.isReady() && sameHeads(hexHeads(handle), expected)) {
      handle.off("heads-changed", onChange)
      resolve()
    }
  })
}

/**
 * Resolves when the server (a connected peer with a storage id) has told us,
 * through the sync protocol, that its copy of the document has exactly
 * `expected` heads. automerge-repo records the heads a peer announces in its
 * sync messages (syncState.theirHeads) per storage id on the handle
 * (handle.setSyncInfo -> "remote-heads" event, handle.getSyncInfo(storageId)).
 * Also accepted: the server's heads equal our local heads and our document
 * contains every expected head (others changed the same document meanwhile).
 */
function serverAcknowledges(repo, handle, expected) {
  const serverStorageIds = () =>
    new Set(repo.peers.map(p => repo.getStorageIdOfPeer(p)).filter(Boolean))
  return new Promise(resolve => {
    let done = false
    const check = () => {
      if (done) return
      for (const sid of serverStorageIds()) {
        const info = handle.getSyncInfo(sid)
        if (!info) continue
        const remote = decodeHeads(info.lastHeads)
        const ok =
          sameHeads(remote, expected) ||
          (sameHeads(remote, hexHeads(handle)) && A.hasHeads(handle.doc(), expected))
        if (ok) {
          done = true
          handle.off("remote-heads", check)
          handle.off("heads-changed", check)
          resolve(sid)
          return
        }
      }
    }
    handle.on("remote-heads", check)
    handle.on("heads-changed", check)
    check()
  })
}

function device(spec) {
  const storage = new TrackedNodeFS(spec.storage)
  return { spec, storage, repo: null, adapter: null, handles: [], disconnects: 0 }
}

function newRepo(dev, network) {
  const repo = new Repo({ storage: dev.storage, network })
  repo.networkSubsystem.on("peer-disconnected", () => {
    dev.disconnects++
    debugLog(dev.spec.id, "lost its connection to the server")
  })
  return repo
}

function memoryLine() {
  const m = process.memoryUsage()
  const mb = x => Math.round(x / 1e6)
  return `rss ${mb(m.rss)} MB, js heap ${mb(m.heapUsed)} MB, external ${mb(m.external)} MB (incl. wasm)`
}

function round(ms) {
  return Math.round(ms * 10) / 10
}

/** Describes the documents of a device that are not (yet) as expected. */
function pendingDocs(dev) {
  const handles = Object.values(dev.repo?.handles ?? {})
  const out = []
  for (const d of dev.spec.docs) {
    const h = handles.find(h => d.url.endsWith(h.documentId))
    if (!h) out.push(`${d.name}: no handle`)
    else if (!h.isReady()) out.push(`${d.name}: ${h.state}`)
    else if (!sameHeads(hexHeads(h), d.heads)) out.push(`${d.name}: heads ${hexHeads(h).length} differ`)
  }
  return `pending: ${out.join(", ") || "none (flush)"}`
}

// ---------------------------------------------------------------- initial
// Fresh storage, online: find every document by url, wait until it has
// exactly the expected heads, then write it to storage (repo.flush).
async function runInitial(dev) {
  fs.mkdirSync(dev.spec.storage, { recursive: true })
  const t0 = performance.now()
  dev.adapter = new WebSocketClientAdapter(job.server)
  dev.repo = newRepo(dev, [dev.adapter])
  // Wait for the server's "peer" answer to our "join" before asking for the
  // documents: a Repo that finds a document it does not have waits for its
  // network adapters' whenReady(), which WebSocketClientAdapter forces after
  // 1 s even when the server has not answered yet; the request then goes to no
  // peer and the document is marked unavailable at once (seen with 50 devices
  // connecting to one busy server). Nothing can be fetched before this answer
  // anyway, so waiting for it costs nothing.
  const connected = new Promise(resolve => dev.repo.networkSubsystem.once("peer", resolve))
  const work = (async () => {
    await connected
    // "unavailable" is accepted here (and then waited out) because a busy
    // process can lose its socket: NodeWSServerAdapter terminates a client that
    // has not answered its 5 s keep-alive ping by the next one, and a document
    // still being requested when its only peer disconnects is marked
    // unavailable. WebSocketClientAdapter reconnects after 5 s and the Repo
    // requests the document again; it becomes ready when it arrives.
    dev.handles = await Promise.all(
      dev.spec.docs.map(d => dev.repo.find(d.url, { allowableStates: ["ready", "unavailable"] })),
    )
    await Promise.all(dev.handles.map((h, i) => localHeadsReach(h, dev.spec.docs[i].heads)))
    await dev.repo.flush(dev.handles.map(h => h.documentId))
  })()
  try {
    await withTimeout(work, timeoutMs, "waiting for the documents")
  } catch (e) {
    if (e instanceof Timeout) e.message += `; ${pendingDocs(dev)}`
    throw e
  }
  return performance.now() - t0
}

// ------------------------------------------------------------------- edit
// Offline: load every document from storage, apply the device's changes
// through the handle, check the heads, write to storage.
async function runEdit(dev) {
  const t0 = performance.now()
  dev.repo = newRepo(dev, [])
  const work = (async () => {
    dev.handles = await Promise.all(dev.spec.docs.map(d => dev.repo.find(d.url)))
    dev.spec.docs.forEach((d, i) => {
      const h = dev.handles[i]
      if (d.changes) {
        const bytes = new Uint8Array(fs.readFileSync(d.changes))
        h.update(doc => A.loadIncremental(doc, bytes))
      }
      const got = hexHeads(h)
      if (!sameHeads(got, d.heads))
        throw new Error(`${d.name}: heads after edit ${JSON.stringify(sortedHeads(got))} != expected ${JSON.stringify(sortedHeads(d.heads))}`)
    })
    await dev.repo.flush(dev.handles.map(h => h.documentId))
  })()
  await withTimeout(work, timeoutMs, "editing")
  return performance.now() - t0
}

// ------------------------------------------------------------------- sync
// Phase 1 (not timed, offline): load every document from storage.
async function loadForSync(dev) {
  dev.repo = newRepo(dev, [])
  const work = (async () => {
    dev.handles = await Promise.all(dev.spec.docs.map(d => dev.repo.find(d.url)))
    dev.spec.docs.forEach((d, i) => {
      const got = hexHeads(dev.handles[i])
      if (!A.hasHeads(dev.handles[i].doc(), d.heads))
        throw new Error(`${d.name}: stored heads ${JSON.stringify(sortedHeads(got))} lack expected ${JSON.stringify(sortedHeads(d.heads))}`)
    })
  })()
  await withTimeout(work, timeoutMs, "loading from storage")
}

// Phase 2 (timed): connect, and wait until the server has acknowledged
// holding the expected heads of every document.
async function runSync(dev) {
  const t0 = performance.now()
  const acked = dev.handles.map(() => false)
  const acks = dev.handles.map((h, i) =>
    serverAcknowledges(dev.repo, h, dev.spec.docs[i].heads).then(() => {
      acked[i] = true
      debugLog(dev.spec.id, dev.spec.docs[i].name, "acknowledged after", round(performance.now() - t0), "ms")
    }),
  )
  dev.adapter = new WebSocketClientAdapter(job.server)
  dev.repo.networkSubsystem.addNetworkAdapter(dev.adapter)
  try {
    await withTimeout(Promise.all(acks), timeoutMs, "waiting for the server's acknowledgement")
  } catch (e) {
    if (e instanceof Timeout) {
      const missing = dev.spec.docs.filter((d, i) => !acked[i]).map(d => d.name)
      e.message += `; not acknowledged: ${missing.join(", ")}; connected: ${dev.repo.peers.length > 0}`
    }
    throw e
  }
  return performance.now() - t0
}

// ------------------------------------------------------------------- main
const devices = job.devices.map(device)
let failed = 0
const report = (dev, ms, error) => {
  const line = { id: dev.spec.id, ms: round(ms), ok: !error }
  if (error) {
    failed++
    line.error = String(error?.message ?? error)
    debugLog(dev.spec.id, error?.stack ?? error)
  }
  emit(line)
}

const loopDelay = monitorEventLoopDelay({ resolution: 20 })
loopDelay.enable()
const jobStart = performance.now()
if (mode === "initial") {
  // all devices go online at once and fetch concurrently
  await Promise.all(
    devices.map(async dev => {
      const t0 = performance.now()
      try {
        report(dev, await runInitial(dev))
      } catch (e) {
        report(dev, performance.now() - t0, e)
      }
    }),
  )
} else if (mode === "edit") {
  // offline and not timed: one device after the other (same total CPU in one
  // thread, but each device's ms is its own and no device waits on the others)
  for (const dev of devices) {
    const t0 = performance.now()
    try {
      report(dev, await runEdit(dev))
    } catch (e) {
      report(dev, performance.now() - t0, e)
    }
  }
} else {
  // phase 1, not timed: load every device's documents from its storage,
  // offline, one device after the other
  const loadT0 = performance.now()
  const loaded = []
  for (const dev of devices) {
    try {
      await loadForSync(dev)
      loaded.push(true)
    } catch (e) {
      report(dev, 0, e)
      loaded.push(false)
    }
  }
  debugLog(`sync: loaded ${devices.length} devices in ${round(performance.now() - loadT0)} ms`)
  // barrier passed: every device has its documents in memory; now all go
  // online together and are timed
  await Promise.all(
    devices.map(async (dev, i) => {
      if (!loaded[i]) return
      const t0 = performance.now()
      try {
        report(dev, await runSync(dev))
      } catch (e) {
        report(dev, performance.now() - t0, e)
      }
    }),
  )
}
debugLog(`${mode}: all devices finished in ${round(performance.now() - jobStart)} ms;`,
  `disconnects: ${devices.reduce((a, d) => a + d.disconnects, 0)};`,
  `event loop delay max ${round(loopDelay.max / 1e6)} ms, p99 ${round(loopDelay.percentile(99) / 1e6)} ms;`,
  memoryLine())

// Shutdown: go offline, let automerge-repo finish the saves it scheduled by
// itself (throttled document saves, sync states per peer storage id), write
// anything still unsaved, and exit.
for (const dev of devices) {
  try {
    if (dev.repo) dev.repo.networkSubsystem.disconnect()
  } catch {
    // an adapter that never opened its socket
  }
}
const quietDeadline = performance.now() + 15_000
while (performance.now() < quietDeadline) {
  const now = performance.now()
  const busy = devices.some(d => d.storage.inFlight > 0 || now - d.storage.lastActivity < 400)
  if (!busy) break
  await sleep(50)
}
await Promise.all(
  devices.map(async dev => {
    if (!dev.repo) return
    try {
      const ready = Object.values(dev.repo.handles).filter(h => h.isReady()).map(h => h.documentId)
      await dev.repo.flush(ready)
    } catch (e) {
      debugLog(dev.spec.id, "final flush:", e?.stack ?? e)
    }
  }),
)
emit({ done: true, devices: devices.length, failed })
await drainStdout()
process.exit(failed === 0 ? 0 : 1)
