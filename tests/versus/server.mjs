// The automerge-repo sync server of the tpsync side-by-side benchmark.
//
// Set up the way automerge-repo's reference sync server
// (automerge/automerge-repo-sync-server, src/server.js) does it: an HTTP server
// whose "upgrade" requests go to a `ws` WebSocketServer({ noServer: true })
// wrapped in NodeWSServerAdapter, a NodeFSStorageAdapter(dir), a fixed peerId
// and `sharePolicy: async () => false` (the server only syncs documents a peer
// asks for by id). The only differences: plain `http` instead of express (the
// reference only uses express to answer "GET /"), the port and the directory
// come from the command line, it binds 127.0.0.1 by default, and SIGTERM
// closes it cleanly (reference: no handler).
//
//   node server.mjs --storage DIR --port N [--host 127.0.0.1] [--keep-alive-ms 5000]
//
// --keep-alive-ms is NodeWSServerAdapter's keepAliveInterval; the default is
// the adapter's own default (5000), i.e. the reference setup. Every interval
// the adapter terminates each client that has not answered the previous ping,
// so a server whose event loop is blocked for longer than that (e.g. loading
// many documents on a cold start) drops its clients; see README.md. A larger
// value is only for experiments.
//
// Prints exactly one line on stdout, `{"listening":PORT}`, once it listens
// (port 0 = any free port), then runs until killed. On SIGTERM/SIGINT it
// closes the sockets, lets automerge-repo's pending (throttled) saves finish,
// writes every loaded document that changed since its last save, and exits 0.

import fs from "node:fs"
import http from "node:http"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { WebSocketServer } from "ws"
import { Repo } from "@automerge/automerge-repo"
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import { parseArgs, required, emit, sleep } from "./common.mjs"

// automerge-repo reports some errors with console.log: keep stdout for our one line.
console.log = console.info = console.warn = (...a) => console.error(...a)

const args = parseArgs()
const dir = required(args, "storage")
const port = Number(required(args, "port"))
const host = typeof args.host === "string" ? args.host : "127.0.0.1"
const keepAliveMs = args["keep-alive-ms"] === undefined ? undefined : Number(args["keep-alive-ms"])

fs.mkdirSync(dir, { recursive: true })

const socket = new WebSocketServer({ noServer: true })

const repo = new Repo({
  network: [new NodeWSServerAdapter(socket, keepAliveMs)],
  storage: new NodeFSStorageAdapter(dir),
  peerId: "storage-server-versus",
  // Since this is a server, we don't share generously — meaning we only sync
  // documents they already know about and can ask for by ID.
  sharePolicy: async () => false,
})

const server = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/plain" })
  res.end("automerge-repo sync server (tpsync versus) is running\n")
})

server.on("upgrade", (request, sock, head) => {
  socket.handleUpgrade(request, sock, head, ws => {
    socket.emit("connection", ws, request)
  })
})

server.listen(port, host, () => {
  emit({ listening: server.address().port })
})

// VERSUS_DEBUG=1: statistics on stderr at shutdown (no effect on the server).
const debug = !!process.env.VERSUS_DEBUG
const loopDelay = debug ? monitorEventLoopDelay({ resolution: 20 }) : null
loopDelay?.enable()
let disconnects = 0
if (debug) repo.networkSubsystem.on("peer-disconnected", () => disconnects++)

let closing = false
async function shutdown() {
  if (closing) return
  closing = true
  if (debug) {
    console.error(
      `server: ${Object.keys(repo.handles).length} documents loaded, ${disconnects} peer disconnects,`,
      `event loop delay max ${Math.round(loopDelay.max / 1e6)} ms,`,
      `rss ${Math.round(process.memoryUsage().rss / 1e6)} MB`,
    )
  }
  try {
    // Closing the WebSocketServer makes NodeWSServerAdapter terminate every
    // client socket (its "close" handler).
    socket.close()
    server.close()
    server.closeAllConnections?.()
    // automerge-repo saves documents and sync states through 100 ms throttles:
    // give the pending ones time to run, then write whatever is still unsaved
    // (repo.flush skips documents whose heads are already on disk).
    await sleep(500)
    const ready = Object.values(repo.handles)
      .filter(h => h.isReady())
      .map(h => h.documentId)
    await repo.flush(ready)
  } catch (e) {
    console.error("shutdown:", e)
  }
  process.exit(0)
}
process.on("SIGTERM", shutdown)
process.on("SIGINT", shutdown)
