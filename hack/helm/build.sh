#!/usr/bin/env bash
# Builds Helm v4 (helm.sh/helm/v4/cmd/helm, the version pinned in this directory's go.mod) from the Go
# module proxy into a cache keyed by go.mod + go.sum, outside the clone, like the control plane: a second
# run, or a fresh clone on the same machine, finds the binary and returns at once.
# Progress goes to stderr; the path of the helm binary is the last line of stdout.
# Environment: KUBEVIP_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/kubevip).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key=$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-16)
cache=${KUBEVIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubevip}
out="$cache/helm/$key/bin/helm"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "hack/helm/build.sh: Go is required (go1.26+) to build helm" >&2; exit 1; }
mkdir -p "$cache/helm/$key/bin"
# One build at a time per machine: a second caller waits, then finds the binary.
exec 9>"$cache/helm/.lock"
if ! flock -n 9; then
  echo "hack/helm/build.sh: another build holds $cache/helm/.lock; waiting for it" >&2
  flock 9
fi
if [ -x "$out" ]; then echo "$out"; exit 0; fi
version=$(sed -n 's/^require helm.sh\/helm\/v4 \(v[0-9.]*\)$/\1/p' "$here/go.mod")
[ -n "$version" ] || { echo "hack/helm/build.sh: no 'require helm.sh/helm/v4 vX.Y.Z' line in $here/go.mod" >&2; exit 1; }
start=$(date +%s)
echo "hack/helm/build.sh: building helm $version (helm.sh/helm/v4/cmd/helm) ..." >&2
cd "$here"
# `helm version` reports the module version, as a release binary would.
go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$version -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
  -o "$out.partial" helm.sh/helm/v4/cmd/helm
mv "$out.partial" "$out"
echo "hack/helm/build.sh: helm $version ready in $out ($(( $(date +%s) - start ))s)" >&2
echo "$out"
