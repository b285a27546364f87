// Small helpers shared by the automerge-repo side of the tpsync benchmark.
// Nothing here changes how automerge-repo behaves.

import fs from "node:fs"

/** Parses `--name value` pairs (and bare `--flag`) into an object. */
export function parseArgs(argv = process.argv.slice(2)) {
  const out = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith("--")) throw new Error(`unexpected argument: ${a}`)
    const key = a.slice(2)
    const next = argv[i + 1]
    if (next === undefined || next.startsWith("--")) {
      out[key] = true
    } else {
      out[key] = next
      i++
    }
  }
  return out
}

export function required(args, key) {
  const v = args[key]
  if (v === undefined || v === true) {
    process.stderr.write(`missing --${key}\n`)
    process.exit(2)
  }
  return v
}

export function readJson(path) {
  return JSON.parse(fs.readFileSync(path, "utf8"))
}

/** Writes one JSON line on stdout. */
export function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n")
}

/** Resolves once stdout has drained, so nothing is lost on process.exit. */
export function drainStdout() {
  return new Promise(resolve => {
    if (process.stdout.writableLength === 0) resolve()
    else process.stdout.once("drain", resolve)
  })
}

/** Compares two sets of hex change hashes (order does not matter). */
export function sameHeads(a, b) {
  if (!a || !b || a.length !== b.length) return false
  const x = [...a].sort()
  const y = [...b].sort()
  return x.every((h, i) => h === y[i])
}

export const sortedHeads = heads => [...heads].sort()

export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** Prints a line on stderr when VERSUS_DEBUG is set (stdout stays machine-readable). */
export function debugLog(...parts) {
  if (process.env.VERSUS_DEBUG) process.stderr.write(parts.join(" ") + "\n")
}
