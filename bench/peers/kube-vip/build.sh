#!/usr/bin/env bash
# Builds the upstream kube-vip agent (benchmark peer only; the product never depends on it) from the Go
# module proxy into a cache keyed by the wrapper module's go.mod + go.sum, like hack/controlplane/build.sh.
# Usage: build.sh [VERSION]   (VERSION = a subdirectory here, default: the newest one)
# Prints the binary's path on its last line of stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v go >/dev/null || { echo "build.sh: Go is required (go1.26+) to build kube-vip" >&2; exit 1; }
version=${1:-$(cd "$here" && ls -d v*/ | tr -d / | sort -V | tail -1)}
mod="$here/$version"
[ -f "$mod/go.mod" ] || { echo "build.sh: no wrapper module $mod (have: $(cd "$here" && ls -d v*/ | tr -d / | xargs))" >&2; exit 1; }
key=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-16)
cache=${KUBEVIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubevip}
out="$cache/kube-vip/$version-$key/kube-vip"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
mkdir -p "$cache/kube-vip"
# One build at a time per machine: a second caller waits, then finds the binary.
exec 9>"$cache/kube-vip/.lock"
flock 9
if [ -x "$out" ]; then echo "$out"; exit 0; fi
mkdir -p "$(dirname "$out")"
commit=$(curl -fsS "https://proxy.golang.org/github.com/kube-vip/kube-vip/@v/$version.info" 2>/dev/null \
  | sed -n 's/.*"Hash":"\([0-9a-f]\{7\}\).*/\1/p' || true)
start=$(date +%s)
echo "build.sh: building kube-vip $version ..." >&2
cd "$mod"
go build -trimpath -ldflags "-s -w -X main.Version=$version -X main.Build=${commit:-unknown}" \
  -o "$out.partial" github.com/kube-vip/kube-vip
mv "$out.partial" "$out"
echo "build.sh: built kube-vip $version in $(( $(date +%s) - start ))s" >&2
echo "$out"
