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
# The pinned npm toolchain (package.json + package-lock.json) is installed
# once into $SLUICE_TOOLCHAIN_CACHE (default ~/.cache/sluice/toolchains),
# keyed by the hash of both files. A component built before from the same
# inputs comes from the build cache (build-cache.sh) without the toolchain,
# so neither cache proves the lock still installs: scripts/check-locks does.
# Exit status 3: the toolchain could not be installed here (no node/npm, the
#   registry unreachable); the tests may skip on it.
# Exit status 4: npm refused the pinned toolchain (lock out of sync with
#   package.json or this npm, a pinned package missing): a bug in the example,
#   never skipped. npm's error is printed either way.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${SLUICE_HOOK_OUT:-$here/dist}
# wit/, sluice-hook/ (the JavaScript SDK) and build-cache.sh are links into
# the repository; a copy made with `cp -rL` holds the files themselves.
wit="$here/wit"
[ -f "$wit/hook.wit" ] || { echo "build.sh: $wit/hook.wit is missing: copy the example with cp -rL, or copy sluice's wit/ into it" >&2; exit 2; }
sdk="$here/sluice-hook"
[ -f "$sdk/sluice-hook.js" ] || { echo "build.sh: $sdk/sluice-hook.js is missing: copy the example with cp -rL, or copy sluice's hook-examples/sluice-hook-js into it as sluice-hook/" >&2; exit 2; }
. "$here/build-cache.sh"
cache=${SLUICE_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/toolchains}
what=${1:-quickjs}
mkdir -p "$out" "$cache"

# One build at a time per output directory (tests may call us in parallel).
exec 9>"$out/.js-tools-rewriter.lock"
command -v flock >/dev/null && flock 9

hash() { cat "$@" | sha256sum | cut -c1-16; }

stage=
trap '[ -z "$stage" ] || rm -rf "$stage"' EXIT

# npm_failed LOG TMP: show npm's error, then exit 3 when the registry could
# not be reached, 4 when npm refused the pinned toolchain. The one-line
# reason comes last, so a caller that shows only the tail still shows it.
npm_failed() {
  local log=$1 code why
  # EUSAGE appends `npm ci`'s usage text to the reason: left out.
  sed '/^npm error Clean install a project$/,$d' "$log" >&2
  code=$(sed -n 's/^npm error code //p' "$log" | head -n 1)
  why=$(sed -n 's/^npm error //p' "$log" | grep -Ev '^((code|syscall|errno) |$)' | head -n 1)
  rm -rf "$2" "$log"
  case $code in
    ENOTFOUND | EAI_AGAIN | ECONNREFUSED | ECONNRESET | ETIMEDOUT | ENETUNREACH | EHOSTUNREACH | \
      ERR_SOCKET_TIMEOUT | E5[0-9][0-9])
      echo "build.sh: npm ci could not reach the registry ($code): $why" >&2
      exit 3 ;;
  esac
  echo "build.sh: npm $(npm --version) refused the pinned toolchain (${code:-no error code}): $why" >&2
  echo "build.sh: package.json and package-lock.json must install with npm ci; scripts/check-locks checks them" >&2
  exit 4
}

toolchain() {
  command -v node >/dev/null && command -v npm >/dev/null || {
    echo "build.sh: node and npm are needed (Node 18 or newer)" >&2
    exit 3
  }
  local key dir
  # npm ci reads both files: a package.json edited without its lock must
  # not find the old toolchain.
  key=$(hash "$here/package.json" "$here/package-lock.json")
  dir="$cache/js-$key"
  if [ ! -x "$dir/node_modules/.bin/jco" ]; then
    echo "build.sh: installing the pinned jco + componentize-js into $dir" >&2
    local tmp="$dir.tmp.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    cp "$here/package.json" "$here/package-lock.json" "$tmp/"
    if ! (cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error) >"$tmp.log" 2>&1; then
      npm_failed "$tmp.log" "$tmp"
    fi
    cat "$tmp.log" >&2 && rm -f "$tmp.log"
    rm -rf "$dir" && mv "$tmp" "$dir"
  fi
  bin="$dir/node_modules/.bin"
}

build() { # backend output
  local backend=$1 name=$2 wasm="$out/$2" key
  # The toolchain is pinned by package-lock.json; the SDK's module is
  # compiled in, so an edit of it rebuilds.
  key=$(hook_cache_key "backend $backend" "$here/tools-rewriter.js" "$sdk/sluice-hook.js" \
    "$here/package.json" "$here/package-lock.json" "$here/build.sh" "$here/build-cache.sh" "$wit"/*.wit)
  hook_cache_fetch "$key" "$out" "$name" && return
  toolchain
  local t0=$SECONDS
  # Both engines read the hook's imports from its own directory: jco's
  # QuickJS backend bundles them, componentize-js lets StarlingMonkey load
  # them at build time from that directory (mapped as /) and no further, so
  # the link sluice-hook/ leads nowhere there. The build reads a staged copy
  # instead: the hook and the SDK's module, links resolved, in one
  # directory that is also the working directory (componentize-js maps the
  # working directory when the source is under it).
  stage="$out/.stage-$backend.$$"
  rm -rf "$stage" && mkdir -p "$stage/sluice-hook"
  cp "$here/tools-rewriter.js" "$stage/"
  cp "$sdk/sluice-hook.js" "$sdk/package.json" "$stage/sluice-hook/"
  case $backend in
    quickjs)
      # --backend-qjs-disable-async: no component-model-async in the host;
      # --backend-qjs-stub-wasi: no WASI imports at all.
      (cd "$stage" && "$bin/jco" componentize tools-rewriter.js -w "$wit" -n hook \
        --backend quickjs --backend-qjs-disable-async --backend-qjs-stub-wasi \
        -o "$wasm.tmp") >&2 ;;
    starlingmonkey)
      # Without http/fetch-event it would import wasi:http, which sluice
      # does not provide; the others are denied by the host anyway.
      (cd "$stage" && "$bin/componentize-js" tools-rewriter.js --wit "$wit" -n hook \
        -d stdio random clocks http fetch-event -o "$wasm.tmp") >&2 ;;
  esac
  rm -rf "$stage"
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
