#!/usr/bin/env bash
# Build the C audit logger into a sluice hook component.
#
#   ./build.sh   ->  $SLUICE_HOOK_OUT/c_audit_log.wasm
#                    (default <this directory>/dist)
#
# Steps: wit-bindgen 0.63 generates the C bindings for wit/; clang (wasm32-wasi,
# reactor) builds a core module; wrap/ (a tiny Rust tool over wit-component)
# turns it into a component.
# Tools: clang + lld + wasi-libc (Debian: apt-get install clang lld wasi-libc
# libclang-rt-14-dev-wasm32, done here when running as root; or set
# WASI_SDK_PATH to a wasi-sdk), wit-bindgen-cli 0.63.0 (from PATH, else
# installed with cargo into $SLUICE_TOOLCHAIN_CACHE, default
# ~/.cache/sluice/toolchains; ~4 min once). A component built before from
# the same inputs and compiler comes from the build cache (build-cache.sh).
# Exit status 3: a toolchain could not be installed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${SLUICE_HOOK_OUT:-$here/dist}
# wit/ and build-cache.sh are links into the repository; a copy made with
# `cp -rL` holds the files themselves.
wit="$here/wit"
[ -f "$wit/hook.wit" ] || { echo "build.sh: $wit/hook.wit is missing: copy the example with cp -rL, or copy sluice's wit/ into it" >&2; exit 2; }
. "$here/build-cache.sh"
cache=${SLUICE_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/toolchains}
wasm="$out/c_audit_log.wasm"
gen="$out/c-audit-log.gen"
WIT_BINDGEN_VERSION=0.63.0
mkdir -p "$out" "$cache"

exec 9>"$out/.c-audit-log.lock"
command -v flock >/dev/null && flock 9


# clang that can target wasm32-wasi with a libc.
if [ -n "${WASI_SDK_PATH:-}" ]; then
  cc=("$WASI_SDK_PATH/bin/clang" "--sysroot=$WASI_SDK_PATH/share/wasi-sysroot")
else
  cc=(clang)
fi
can_build_wasm() {
  echo 'int main(void){return 0;}' |
    "${cc[@]}" --target=wasm32-wasi -x c - -o /dev/null 2>/dev/null
}
# The inputs; the toolchain is wit-bindgen (pinned above), the wrapper's
# lock file, and the compiler (its version line).
cache_key() {
  hook_cache_key "$("${cc[@]}" --version 2>/dev/null | head -n 1)" "$here/audit.c" "$here/build.sh" \
    "$here/build-cache.sh" "$here/wrap/Cargo.toml" "$here/wrap/Cargo.lock" "$here/wrap/src" "$wit"/*.wit
}
key=$(cache_key)
hook_cache_fetch "$key" "$out" c_audit_log.wasm && exit 0

if ! can_build_wasm; then
  pkgs=(clang lld wasi-libc libclang-rt-14-dev-wasm32)
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "build.sh: installing ${pkgs[*]} with apt-get" >&2
    { apt-get update -qq && apt-get install -y -qq "${pkgs[@]}"; } >&2 || true
  elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then
    echo "build.sh: installing ${pkgs[*]} with sudo apt-get" >&2
    { sudo apt-get update -qq && sudo apt-get install -y -qq "${pkgs[@]}"; } >&2 || true
  fi
  can_build_wasm || {
    echo "build.sh: no clang for wasm32-wasi; install ${pkgs[*]} or set WASI_SDK_PATH" >&2
    exit 3
  }
  # The compiler just installed is part of the key.
  key=$(cache_key)
  hook_cache_fetch "$key" "$out" c_audit_log.wasm && exit 0
fi

# wit-bindgen-cli, the pinned version.
wit_bindgen=wit-bindgen
if ! wit-bindgen --version 2>/dev/null | grep -q " $WIT_BINDGEN_VERSION\b"; then
  wit_bindgen="$cache/wit-bindgen-$WIT_BINDGEN_VERSION/bin/wit-bindgen"
  if [ ! -x "$wit_bindgen" ]; then
    command -v cargo >/dev/null || { echo "build.sh: cargo is needed" >&2; exit 3; }
    echo "build.sh: installing wit-bindgen-cli $WIT_BINDGEN_VERSION (takes minutes, once)" >&2
    # A kept target dir lets an interrupted install resume where it stopped.
    CARGO_TARGET_DIR="$cache/wit-bindgen-build" \
      cargo install -q --locked wit-bindgen-cli --version "$WIT_BINDGEN_VERSION" \
      --root "$cache/wit-bindgen-$WIT_BINDGEN_VERSION" >&2 || {
      echo "build.sh: installing wit-bindgen-cli failed" >&2
      exit 3
    }
  fi
fi

t0=$SECONDS
rm -rf "$gen" && mkdir -p "$gen"
"$wit_bindgen" c "$wit" --world hook --out-dir "$gen" >&2
"${cc[@]}" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror -Wl,--strip-debug \
  -I "$gen" -o "$gen/core.wasm" "$gen/hook.c" "$here/audit.c" "$gen/hook_component_type.o"

# The wrapper runs on the build machine: keep the guest's flags away from it.
env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_TARGET \
  CARGO_TARGET_DIR="$cache/hook-tools" \
  cargo build -q --release --locked --manifest-path "$here/wrap/Cargo.toml" >&2
"$cache/hook-tools/release/sluice-hook-wrap" "$gen/core.wasm" "$wasm.tmp"
mv "$wasm.tmp" "$wasm"
hook_cache_store "$key" "$out" c_audit_log.wasm
echo "build.sh: built $wasm ($(wc -c < "$wasm") bytes, $((SECONDS - t0)) s)" >&2
