#!/bin/sh
# Build the rust-redact hook as a WASI component (wasm32-wasip2 emits a component
# directly) and copy it to hook-examples/dist/rust-redact.wasm.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "rust-redact: the wasm32-wasip2 target is missing: rustup target add wasm32-wasip2" >&2
    exit 1
fi
cargo build --release --target wasm32-wasip2 --manifest-path "$here/Cargo.toml"
mkdir -p "$here/../dist"
cp "$here/../target/wasm32-wasip2/release/rust_redact.wasm" "$here/../dist/rust-redact.wasm"
echo "$here/../dist/rust-redact.wasm"
