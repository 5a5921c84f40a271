#!/usr/bin/env bash
# Build the Python argument validator into a sluice hook component.
#
#   ./build.sh   ->  $SLUICE_HOOK_OUT/python_arg_validator.wasm
#                    (default <this directory>/dist)
# componentize-py (pinned in requirements.txt) is installed once into a venv
# under $SLUICE_TOOLCHAIN_CACHE (default ~/.cache/sluice/toolchains), keyed by
# the requirements file's hash. A component built before from the same inputs
# comes from the build cache (build-cache.sh) without the toolchain, so
# neither cache proves the pin still installs: scripts/check-locks does.
# Exit status 3: the toolchain could not be installed here (no python3 or
#   venv, PyPI unreachable); the tests may skip on it.
# Exit status 4: pip refused the pinned toolchain (no such version, none for
#   this Python or platform): a bug in the example, never skipped. pip's
#   error is printed either way.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${SLUICE_HOOK_OUT:-$here/dist}
# The SDK (sluice-hook-py) sits beside the example and carries the WIT (its
# wit/ is a link to sluice's); build-cache.sh is a link too. A copy made with
# `cp -rL python-arg-validator sluice-hook-py DEST/` holds the files themselves.
sdk=$here/../sluice-hook-py
wit="$sdk/wit"
[ -f "$sdk/sluice_hook/__init__.py" ] && [ -f "$wit/hook.wit" ] || { echo "build.sh: the SDK is missing beside the example: copy both with cp -rL (cp -rL python-arg-validator sluice-hook-py DEST/)" >&2; exit 2; }
. "$here/build-cache.sh"
cache=${SLUICE_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/toolchains}
wasm="$out/python_arg_validator.wasm"
mkdir -p "$out" "$cache"

exec 9>"$out/.python-arg-validator.lock"
command -v flock >/dev/null && flock 9

hash() { cat "$@" | sha256sum | cut -c1-16; }

# componentize-py, pinned by requirements.txt, bundles its own CPython.
# The SDK's sources are inputs too: an SDK edit rebuilds.
key=$(hook_cache_key "" "$here/app.py" "$here/requirements.txt" "$here/build.sh" \
  "$here/build-cache.sh" "$sdk"/sluice_hook/*.py "$wit"/*.wit)
hook_cache_fetch "$key" "$out" python_arg_validator.wasm && exit 0

python=${PYTHON:-python3}
command -v "$python" >/dev/null || { echo "build.sh: python3 (3.10+) is needed" >&2; exit 3; }
venv="$cache/py-$(hash "$here/requirements.txt")"
# .installed marks a complete install (an interrupted one is redone).
if [ ! -f "$venv/.installed" ]; then
  echo "build.sh: installing componentize-py into $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv" >&2 || {
    rm -rf "$venv"
    echo "build.sh: $python -m venv failed (Debian: apt-get install python3-venv)" >&2
    exit 3
  }
  if ! "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt" >"$venv.log" 2>&1; then
    cat "$venv.log" >&2
    rm -rf "$venv"
    # pip says "No matching distribution" offline too: the connection
    # errors before it tell the two apart.
    if grep -Eq 'NewConnectionError|ConnectTimeoutError|ReadTimeoutError|ProxyError|Temporary failure in name resolution|Network is unreachable|Connection refused' "$venv.log"; then
      rm -f "$venv.log"
      echo "build.sh: pip could not reach the package index" >&2
      exit 3
    fi
    echo "build.sh: pip refused the pinned toolchain: $(grep -m 1 '^ERROR' "$venv.log" || tail -n 1 "$venv.log")" >&2
    rm -f "$venv.log"
    exit 4
  fi
  rm -f "$venv.log"
  touch "$venv/.installed"
fi

t0=$SECONDS
# The generated bindings (wit_world) live only inside the component.
# --stub-wasi: CPython's WASI imports become stubs inside the component, so
# it imports only sluice:hook/host (the hook needs no clock, files or
# randomness; Python's `random` would replay a seed fixed at build time).
# -p: the SDK's package and this example's app module.
"$venv/bin/componentize-py" -d "$wit" -w hook componentize --stub-wasi -p "$sdk" -p "$here" app \
  -o "$wasm.tmp" >&2
mv "$wasm.tmp" "$wasm"
hook_cache_store "$key" "$out" python_arg_validator.wasm
echo "build.sh: built $wasm ($(wc -c < "$wasm") bytes, $((SECONDS - t0)) s)" >&2
