#!/usr/bin/env bash
# Builds libmobile_ffi for this machine and generates the Kotlin and Swift
# bindings (and Python, which the tests use) from it.
#
#   mobile-ffi/scripts/bindings.sh [--release] [--prebuilt] [OUT_DIR]
#
# --prebuilt skips the two `cargo build`s and uses the library and generator
# already in the target folder (the tests build them with the workspace's
# features; building them again with `-p` would rebuild their dependencies).
#
# OUT_DIR defaults to target/bindings. Package and module names come from
# mobile-ffi/uniffi.toml (org.tpsync.mobile / Tpsync) and
# sync-core/uniffi.toml (org.tpsync.core / TpsyncCore). The generated
# files are not committed: generate them from the same build of the
# library that ships (a generator of another uniffi version, or another
# build's metadata, does not match).
set -euo pipefail

profile=debug
cargo_profile=()
if [[ "${1:-}" == "--release" ]]; then
  profile=release
  cargo_profile=(--release)
  shift
fi
build=1
if [[ "${1:-}" == "--prebuilt" ]]; then
  build=0
  shift
fi
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/target/bindings}"
cd "$root"

if [[ $build == 1 ]]; then
  cargo build "${cargo_profile[@]}" -p mobile-ffi --lib
  cargo build "${cargo_profile[@]}" -p uniffi-bindgen --bin uniffi-bindgen
fi

target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$(uname -s)" in
  Darwin) lib="$target_dir/$profile/libmobile_ffi.dylib" ;;
  *) lib="$target_dir/$profile/libmobile_ffi.so" ;;
esac
bindgen="$target_dir/$profile/uniffi-bindgen"

rm -rf "$out"
for lang in kotlin swift python; do
  "$bindgen" generate "$lib" --language "$lang" --no-format --out-dir "$out/$lang"
done
cp "$lib" "$out/python/"
touch "$out/python/__init__.py"

echo "library: $lib"
echo "bindings:"
find "$out" -type f \( -name '*.kt' -o -name '*.swift' -o -name '*.h' -o -name '*.modulemap' -o -name '*.py' \) | sort | sed 's/^/  /'
