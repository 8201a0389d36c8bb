#!/usr/bin/env bash
# Creates (once) a cached virtualenv outside the clone, keyed by pyproject.toml, and installs this
# checkout into it. Prints the venv's path on stdout.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${KUBEVIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubevip}
key=$(cat "$repo/pyproject.toml" | sha256sum | cut -c1-16)
venv="$cache/venv-$key"
mkdir -p "$cache"
# One creator at a time: parallel callers wait, then reuse the finished venv.
exec 9>"$cache/venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.deps-installed" ]; then
  echo "venv.sh: creating $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  "$venv/bin/pip" install --quiet -e "$repo[dev]" >&2
  touch "$venv/.deps-installed"
fi
# Point the editable install at this checkout (a fresh clone reuses the venv).
if ! "$venv/bin/python" -c "import kubevip,sys; sys.exit(0 if kubevip.__file__.startswith('$repo/') else 1)" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --no-deps -e "$repo" >&2
fi
echo "$venv"
