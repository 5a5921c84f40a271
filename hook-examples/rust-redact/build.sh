#!/bin/sh
# Build the rust-redact hook as a WASI component (wasm32-wasip2 emits a component
# directly) into ${SLUICE_HOOK_OUT:-<this directory>/dist}/rust-redact.wasm.
# Works the same in a copy of this directory outside the sluice repository.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${SLUICE_HOOK_OUT:-$here/dist}
# wit/ is a link to sluice's wit/ in the repository; a copy made with
# `cp -rL` holds the files themselves.
[ -f "$here/wit/hook.wit" ] || { echo "build.sh: $here/wit/hook.wit is missing: copy the example with cp -rL, or copy sluice's wit/ into it" >&2; exit 2; }
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "rust-redact: the wasm32-wasip2 target is missing: rustup target add wasm32-wasip2" >&2
    exit 1
fi
# Small, fast guests: every byte of the component is instantiated per message.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_LTO=true \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_STRIP=true \
    CARGO_PROFILE_RELEASE_PANIC=abort
cargo build --release --target wasm32-wasip2 --manifest-path "$here/Cargo.toml"
# The workspace's target dir in the repository, the crate's own in a copy.
target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$here/Cargo.toml" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
mkdir -p "$out"
cp "$target/wasm32-wasip2/release/rust_redact.wasm" "$out/rust-redact.wasm"
echo "$out/rust-redact.wasm"
