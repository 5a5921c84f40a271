#!/usr/bin/env bash
# Run JavaScript hook tests under plain node with the SDK's harness
# (testing.js), no component built:
#
#   ./test.sh                      the SDK's own tests
#   ./test.sh FILE.test.js...      those files (an example's test.sh calls this)
#
# Exit status 3: node is missing, or older than 20.6 (the harness needs
# node:module's register); the tests may skip on it, as on a build script's 3.
# Any other failure is the tests'.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null || {
  echo "test.sh: node is needed (20.6 or newer)" >&2
  exit 3
}
node -e 'process.exit(typeof require("node:module").register === "function" ? 0 : 1)' || {
  echo "test.sh: node $(node --version) has no module.register: the harness needs 20.6 or newer" >&2
  exit 3
}
[ $# -gt 0 ] || set -- "$here/sluice-hook.test.js"
exec node --test "$@"
