#!/bin/sh
# Build the rust-caller-policy hook as a WASI component (wasm32-wasip2 emits a component
# directly) into ${SLUICE_HOOK_OUT:-<this directory>/dist}/rust-caller-policy.wasm.
# Works the same in a copy of this directory outside the sluice repository.
# A component built before from the same inputs comes from the build cache
# (build-cache.sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${SLUICE_HOOK_OUT:-$here/dist}
# build-cache.sh (here) and wit/ (in the SDK) are links into the repository;
# a copy made with `cp -rL` holds the files themselves.
# The SDK (sluice-hook) sits beside the example and carries the WIT.
sdk=$here/../sluice-hook
[ -f "$sdk/src/lib.rs" ] && [ -f "$sdk/wit/hook.wit" ] || { echo "build.sh: the SDK is missing beside the example: copy both with cp -rL (cp -rL rust-caller-policy sluice-hook DEST/)" >&2; exit 2; }
. "$here/build-cache.sh"
mkdir -p "$out"
# The inputs: sources, WIT, this script, the compiler, and the dependencies
# as resolved for this crate alone (not the lock file, which in the
# repository also holds the other examples' dependencies).
deps=$(cargo tree --manifest-path "$here/Cargo.toml" --target wasm32-wasip2 -e normal,build \
    --prefix none --format '{p}' | sed 's/ (.*)$//' | LC_ALL=C sort -u)
key=$(hook_cache_key "$(rustc -vV)
$deps" "$here/Cargo.toml" "$here/src" "$here/build.sh" \
    "$here/build-cache.sh" "$sdk/Cargo.toml" "$sdk/src" "$sdk"/wit/*.wit)
if hook_cache_fetch "$key" "$out" rust-caller-policy.wasm; then
    echo "$out/rust-caller-policy.wasm"
    exit 0
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "rust-caller-policy: the wasm32-wasip2 target is missing: rustup target add wasm32-wasip2" >&2
    exit 1
fi
# Small, fast guests: every byte of the component is instantiated per message.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_LTO=true \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_STRIP=true \
    CARGO_PROFILE_RELEASE_PANIC=abort
# A 256 KiB shadow stack instead of Rust's 1 MiB default: the host resets a
# fresh instance's whole linear memory per message, so the stack's size is
# paid on every call (about 2x the proxy's throughput with this hook). Deep
# enough for serde_json's 128 nesting levels.
export CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="-C link-arg=-zstack-size=262144"
cargo build --release --target wasm32-wasip2 --manifest-path "$here/Cargo.toml"
# The workspace's target dir in the repository, the crate's own in a copy.
target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$here/Cargo.toml" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
cp "$target/wasm32-wasip2/release/rust_caller_policy.wasm" "$out/rust-caller-policy.wasm"
hook_cache_store "$key" "$out" rust-caller-policy.wasm
echo "$out/rust-caller-policy.wasm"
