#!/usr/bin/env bash
# Build the JavaScript tools/list rewriter into a sluice hook component.
#
#   ./build.sh                  QuickJS backend (the default: smaller, faster)
#   ./build.sh starlingmonkey   StarlingMonkey backend (componentize-js)
#   ./build.sh all              both
#
# Outputs go to $SLUICE_HOOK_OUT (default <this directory>/dist):
#   js_tools_rewriter.wasm      (QuickJS)
#   js_tools_rewriter_sm.wasm   (StarlingMonkey)
# The pinned npm toolchain (package-lock.json) is installed once into
# $SLUICE_TOOLCHAIN_CACHE (default ~/.cache/sluice/toolchains), keyed by the
# lock file's hash. A component built before from the same inputs comes from
# the build cache (build-cache.sh) without the toolchain.
# Exit status 3: the toolchain could not be installed (no node/npm, offline).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${SLUICE_HOOK_OUT:-$here/dist}
# wit/ and build-cache.sh are links into the repository; a copy made with
# `cp -rL` holds the files themselves.
wit="$here/wit"
[ -f "$wit/hook.wit" ] || { echo "build.sh: $wit/hook.wit is missing: copy the example with cp -rL, or copy sluice's wit/ into it" >&2; exit 2; }
. "$here/build-cache.sh"
cache=${SLUICE_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/toolchains}
what=${1:-quickjs}
mkdir -p "$out" "$cache"

# One build at a time per output directory (tests may call us in parallel).
exec 9>"$out/.js-tools-rewriter.lock"
command -v flock >/dev/null && flock 9

hash() { cat "$@" | sha256sum | cut -c1-16; }

toolchain() {
  command -v node >/dev/null && command -v npm >/dev/null || {
    echo "build.sh: node and npm are needed (Node 18 or newer)" >&2
    exit 3
  }
  local key dir
  key=$(hash "$here/package-lock.json")
  dir="$cache/js-$key"
  if [ ! -x "$dir/node_modules/.bin/jco" ]; then
    echo "build.sh: installing the pinned jco + componentize-js into $dir" >&2
    local tmp="$dir.tmp.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    cp "$here/package.json" "$here/package-lock.json" "$tmp/"
    if ! (cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >&2); then
      rm -rf "$tmp"
      echo "build.sh: npm ci failed" >&2
      exit 3
    fi
    rm -rf "$dir" && mv "$tmp" "$dir"
  fi
  bin="$dir/node_modules/.bin"
}

build() { # backend output
  local backend=$1 name=$2 wasm="$out/$2" key
  # The toolchain is pinned by package-lock.json.
  key=$(hook_cache_key "backend $backend" "$here/tools-rewriter.js" "$here/package.json" \
    "$here/package-lock.json" "$here/build.sh" "$here/build-cache.sh" "$wit"/*.wit)
  hook_cache_fetch "$key" "$out" "$name" && return
  toolchain
  local t0=$SECONDS
  case $backend in
    quickjs)
      # --backend-qjs-disable-async: no component-model-async in the host;
      # --backend-qjs-stub-wasi: no WASI imports at all.
      "$bin/jco" componentize "$here/tools-rewriter.js" -w "$wit" -n hook \
        --backend quickjs --backend-qjs-disable-async --backend-qjs-stub-wasi \
        -o "$wasm.tmp" >&2 ;;
    starlingmonkey)
      # Without http/fetch-event it would import wasi:http, which sluice
      # does not provide; the others are denied by the host anyway.
      "$bin/componentize-js" "$here/tools-rewriter.js" --wit "$wit" -n hook \
        -d stdio random clocks http fetch-event -o "$wasm.tmp" >&2 ;;
  esac
  mv "$wasm.tmp" "$wasm"
  hook_cache_store "$key" "$out" "$name"
  echo "build.sh: built $wasm ($(wc -c < "$wasm") bytes, $((SECONDS - t0)) s)" >&2
}

case $what in
  quickjs) build quickjs js_tools_rewriter.wasm ;;
  starlingmonkey) build starlingmonkey js_tools_rewriter_sm.wasm ;;
  all) build quickjs js_tools_rewriter.wasm
       build starlingmonkey js_tools_rewriter_sm.wasm ;;
  *) echo "usage: $0 [quickjs|starlingmonkey|all]" >&2; exit 2 ;;
esac
