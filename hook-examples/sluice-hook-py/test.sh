#!/bin/sh
# Run the SDK's tests, or with a directory a hook's tests (its test_*.py),
# natively under CPython, with this SDK on the path: no component is built.
#
#   ./test.sh             the SDK's own tests (tests/)
#   ./test.sh DIR         the tests of the hook in DIR
#
# Exit status 3: no python3 3.10+ here (the tests may skip on it); otherwise
# unittest's.
set -eu
sdk=$(cd "$(dirname "$0")" && pwd)
dir=$(cd "${1:-$sdk/tests}" && pwd)
python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 || { echo "test.sh: python3 (3.10+) is needed" >&2; exit 3; }
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    { echo "test.sh: $("$python" --version 2>&1) is too old: 3.10+ is needed" >&2; exit 3; }
# No __pycache__ beside the sources: the build cache keys on them.
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$sdk:$dir${PYTHONPATH:+:$PYTHONPATH}" \
    exec "$python" -m unittest discover -s "$dir" -p 'test_*.py' -t "$dir"
