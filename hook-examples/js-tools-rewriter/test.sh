#!/usr/bin/env bash
# The rewriter's tests under plain node, with the SDK's harness (no component
# built): sluice-hook/test.sh runs them (exit status 3 when node is missing or
# older than 20.6).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/sluice-hook/test.sh" "$here"/*.test.js
