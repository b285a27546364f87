#!/usr/bin/env bash
# Runs every cargo-fuzz target of sync-core/fuzz and server/fuzz, each for a
# bounded time, one after the other; stops at the first crash and says where
# its input is and how to replay it.
#
#   server/fuzz/run-all.sh                  # every target, 60 s each
#   TPSYNC_FUZZ_SECONDS=20 server/fuzz/run-all.sh
#   server/fuzz/run-all.sh sync_request respond   # only these targets
#
# Environment:
#   TPSYNC_FUZZ_SECONDS    time per target (default 60)
#   TPSYNC_FUZZ_SANITIZER  none (default: safe Rust, ~6x faster) or address
#   TPSYNC_FUZZ_CRATES     which fuzz crates (default "sync-core server")
#   TPSYNC_FUZZ_TIMEOUT    seconds one input may take before it counts as a
#                          hang (default 30)
#   TPSYNC_FUZZ_RSS_MB     memory limit, also for one allocation (default 2048)
#   TPSYNC_FUZZ_JOBS       cargo build jobs (default: cargo's)
#   TPSYNC_FUZZ_ARGS       more libFuzzer arguments
#   TPSYNC_FUZZ_TMPDIR     where the targets put their sled data directories
#                          (default /dev/shm when writable: fsync on a real
#                          disk makes backup_restore ~25x slower)
#
# Each target fuzzes corpus/<target>/ (kept between runs, git-ignored), and
# reads the committed seeds/<target>/ and regressions/<target>/ when there
# are: every input that once crashed is replayed first. Builds go to
# target/<sanitizer>/ of each fuzz crate, so the two sanitizers do not
# rebuild each other. Logs: target/run-all-logs/<target>.log.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a C++ compiler; stable
# rustc takes the nightly flags with RUSTC_BOOTSTRAP=1, which this sets.
set -euo pipefail

seconds="${TPSYNC_FUZZ_SECONDS:-60}"
sanitizer="${TPSYNC_FUZZ_SANITIZER:-none}"
crates="${TPSYNC_FUZZ_CRATES:-sync-core server}"
timeout_s="${TPSYNC_FUZZ_TIMEOUT:-30}"
rss_mb="${TPSYNC_FUZZ_RSS_MB:-2048}"
only=("$@")

tmp="${TPSYNC_FUZZ_TMPDIR:-}"
if [ -z "$tmp" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then tmp=/dev/shm; fi
[ -n "$tmp" ] && export TMPDIR="$tmp"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run-all: cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
fi

wanted() {
    [ "${#only[@]}" -eq 0 ] && return 0
    local t
    for t in "${only[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
}

if [ -n "${TPSYNC_FUZZ_JOBS:-}" ]; then export CARGO_BUILD_JOBS="$TPSYNC_FUZZ_JOBS"; fi

summary=()
ran=0
for crate in $crates; do
    dir="$root/$crate/fuzz"
    if [ ! -f "$dir/Cargo.toml" ]; then
        echo "run-all: no fuzz crate in $dir" >&2
        exit 2
    fi
    cd "$dir"
    targets=()
    for t in $(cargo fuzz list); do
        wanted "$t" && targets+=("$t")
    done
    [ "${#targets[@]}" -eq 0 ] && continue
    tdir="target/$sanitizer"
    echo "== $crate/fuzz: building ${targets[*]} (sanitizer: $sanitizer)"
    cargo fuzz build -s "$sanitizer" --target-dir "$tdir"
    mkdir -p target/run-all-logs
    for t in "${targets[@]}"; do
        corpora=("corpus/$t")
        mkdir -p "corpus/$t"
        [ -d "seeds/$t" ] && corpora+=("seeds/$t")
        [ -d "regressions/$t" ] && corpora+=("regressions/$t")
        log="target/run-all-logs/$t.log"
        echo "== $crate/fuzz $t: ${seconds}s (corpora: ${corpora[*]})"
        set +e
        # shellcheck disable=SC2086
        timeout --kill-after=30 "$((seconds + 600))" \
            cargo fuzz run -s "$sanitizer" --target-dir "$tdir" "$t" "${corpora[@]}" -- \
            -max_total_time="$seconds" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" \
            -print_final_stats=1 ${TPSYNC_FUZZ_ARGS:-} >"$log" 2>&1
        status=$?
        set -e
        done_line="$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1 || true)"
        if [ "$status" -ne 0 ]; then
            tail -n 40 "$log"
            echo
            echo "run-all: CRASH in $crate/fuzz target $t (exit $status)."
            artifact="$(grep -oE 'artifacts/[^ ]+' "$log" | tail -n 1 || true)"
            if [ -n "$artifact" ]; then
                echo "  input:  $dir/$artifact"
                echo "  replay: cd $dir && RUSTC_BOOTSTRAP=1 cargo fuzz run -s $sanitizer --target-dir $tdir $t $artifact"
            fi
            echo "  log:    $dir/$log"
            echo "  Fix it, then keep the input as a regression: regressions/$t/ (and a test)."
            exit 1
        fi
        ran=$((ran + 1))
        summary+=("$crate/fuzz $t: ${done_line:-no final line, see $dir/$log}")
    done
done

echo
echo "run-all: $ran target(s), ${seconds}s each, no crash."
for line in "${summary[@]}"; do echo "  $line"; done
