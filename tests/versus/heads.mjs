// Offline, read-only inspection of an automerge-repo NodeFS storage directory.
//
//   node heads.mjs --storage DIR --urls URLS.json
//
// URLS.json: {"<name>": "automerge:...", ...}
// Prints one JSON line: {"heads": {"<name>": ["hex", ...] | null, ...}}
// (null = the document is not in DIR).
//
// It reads the chunks the way automerge-repo's StorageSubsystem.loadDoc does
// (every snapshot chunk, then every incremental chunk of the document,
// concatenated and given to Automerge.loadIncremental), but straight from the
// files: it starts no Repo, so it never writes anything into DIR (not even a
// storage id) and can run on the server's directory after the server stopped.
// Layout used by NodeFSStorageAdapter 2.5.6:
//   DIR/<docId[0..2]>/<docId[2..]>/{snapshot,incremental,sync-state}/<key>

import fs from "node:fs"
import path from "node:path"
import * as A from "@automerge/automerge"
import { parseAutomergeUrl } from "@automerge/automerge-repo"
import { parseArgs, required, readJson, emit, drainStdout } from "./common.mjs"

console.log = console.info = console.warn = (...a) => console.error(...a)

const args = parseArgs()
const dir = required(args, "storage")
const urls = readJson(required(args, "urls"))

function filesIn(d) {
  try {
    return fs
      .readdirSync(d, { withFileTypes: true })
      .flatMap(e => (e.isDirectory() ? filesIn(path.join(d, e.name)) : [path.join(d, e.name)]))
  } catch (e) {
    if (e.code === "ENOENT") return []
    throw e
  }
}

export function storedHeads(storageDir, url) {
  const { documentId } = parseAutomergeUrl(url)
  const docDir = path.join(storageDir, documentId.slice(0, 2), documentId.slice(2))
  const chunks = [
    ...filesIn(path.join(docDir, "snapshot")),
    ...filesIn(path.join(docDir, "incremental")),
  ].map(f => fs.readFileSync(f))
  if (chunks.length === 0) return null
  const doc = A.loadIncremental(A.init(), new Uint8Array(Buffer.concat(chunks)))
  const heads = A.getHeads(doc)
  A.free(doc)
  return heads
}

const heads = {}
for (const [name, url] of Object.entries(urls)) heads[name] = storedHeads(dir, url)
emit({ heads })
await drainStdout()
process.exit(0)
