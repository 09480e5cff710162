#!/bin/sh
# Thin wrapper: runs installer/install.py with the first Python 3.8+ it finds, passing every option on.
# Usage: sh installer/install.sh [options]   (see --help)
here=$(cd "$(dirname "$0")" && pwd)
for candidate in python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)' 2>/dev/null; then
        exec "$candidate" "$here/install.py" "$@"
    fi
done
echo "install.sh: no Python 3.8 or newer found (tried python3, python). Install Python 3, then run this again." >&2
exit 1
