// Seeds an automerge-repo storage directory offline (no network), as the sync
// server's own storage, with documents saved by `Automerge.save()` (e.g. by the
// Rust automerge crate).
//
//   node seed.mjs --storage DIR --docs DOCS.json [--batch 64]
//
// DOCS.json: [{"name": "school.4301200000.books", "path": "/abs/books.automerge"}, ...]
//
// Each file is imported with `repo.import(bytes)` (automerge-repo 2.5.6 gives
// the imported document a new random documentId), written to DIR with
// `repo.flush()`, and reported as one JSON line on stdout:
//   {"urls": {"<name>": "automerge:...", ...}, "heads": {"<name>": ["hex", ...], ...}}
//
// Files are read and imported one at a time. A fresh Repo (and storage
// adapter) is used for every `--batch` documents so that documents and
// NodeFSStorageAdapter's in-memory cache of written chunks can be garbage
// collected: thousands of documents (2,100 of up to ~1 MB) fit in one call.
// Calling it several times on the same DIR (e.g. once per school) also works:
// every call adds documents; the storage id of DIR is created by the first call
// and kept.

import fs from "node:fs"
import * as A from "@automerge/automerge"
import { Repo } from "@automerge/automerge-repo"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import { parseArgs, required, readJson, emit, drainStdout, sleep } from "./common.mjs"

console.log = console.info = console.warn = (...a) => console.error(...a)

const args = parseArgs()
const dir = required(args, "storage")
const docs = readJson(required(args, "docs"))
const batch = Math.max(1, Number(args.batch ?? 64))

fs.mkdirSync(dir, { recursive: true })

const urls = {}
const heads = {}

function newRepo() {
  return new Repo({
    storage: new NodeFSStorageAdapter(dir),
    network: [],
    peerId: "seed",
    sharePolicy: async () => false,
  })
}

let repo = null
for (let i = 0; i < docs.length; i++) {
  const { name, path } = docs[i]
  if (name in urls) throw new Error(`duplicate name ${name}`)
  if (i % batch === 0) {
    // Settle the previous batch's throttled saves (they are no-ops after the
    // flush, but they hold the documents until they run).
    if (repo) await sleep(150)
    repo = newRepo()
    // Creates (first call) or reads the storage id of DIR: the server's storageId.
    await repo.storageId()
  }
  const bytes = new Uint8Array(fs.readFileSync(path))
  const handle = repo.import(bytes)
  urls[name] = handle.url
  heads[name] = A.getHeads(handle.doc())
  await repo.flush([handle.documentId])
}
if (repo) await sleep(150)

emit({ urls, heads })
await drainStdout()
process.exit(0)
