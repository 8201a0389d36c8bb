#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl and etcd from the Go module proxy into a
# cache keyed by the wrapper module's go.mod + go.sum, so fresh clones on the same machine reuse them.
# Usage: build.sh [VERSION]. VERSION (or KUBEVIP_KUBERNETES) picks the wrapper module: none, 1.36 or
# 1.36.3 is this directory's go.mod (the default); 1.29 or 1.29.15 is 1.29/go.mod (etcd 3.5).
# Progress goes to stderr; the bin directory is the last line of stdout.
# Environment: KUBEVIP_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/kubevip), KUBEVIP_BUILD_PROGRESS
# (seconds between progress lines, default 30).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lockname=.lock
want=${1:-${KUBEVIP_KUBERNETES:-}}
want=${want#v}
if [ -n "$want" ]; then
  minor_dir=$(echo "$want" | cut -d. -f1-2)
  mod_version() { sed -n 's/^\s*k8s.io\/kubernetes v\([0-9.]*\)$/\1/p' "$1/go.mod" | head -1; }
  default_version=$(mod_version "$here")
  available="$default_version (default)"
  for d in "$here"/[0-9]*.[0-9]*/; do
    [ -f "$d/go.mod" ] && available="$available, $(mod_version "$d")"
  done
  if [ "$minor_dir" != "$(echo "$default_version" | cut -d. -f1-2)" ]; then
    if [ ! -f "$here/$minor_dir/go.mod" ]; then
      echo "build.sh: no wrapper module for Kubernetes $want; available: $available" >&2; exit 2
    fi
    here="$here/$minor_dir"; lockname=".lock-$minor_dir"
  fi
  have=$(mod_version "$here")
  case "$want" in
    "$minor_dir"|"$have") ;;
    *) echo "build.sh: Kubernetes $want is not pinned; available: $available" >&2; exit 2 ;;
  esac
fi
key=$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-16)
cache=${KUBEVIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubevip}
out="$cache/controlplane/$key/bin"
bins=(kube-apiserver kube-controller-manager kubectl etcd)
all_there() { for b in "${bins[@]}"; do [ -x "$out/$b" ] || return 1; done; }
if all_there; then
  echo "$out"; exit 0
fi
command -v go >/dev/null || { echo "build.sh: Go is required (go1.26+) to build the control plane" >&2; exit 1; }
mkdir -p "$cache/controlplane"
# One build at a time per machine: a second caller waits, then finds the binaries.
# (Another version's build uses its own lock, so a long 1.29 build never blocks the default one.)
exec 9>"$cache/controlplane/$lockname"
if ! flock -n 9; then
  echo "build.sh: another build holds $cache/controlplane/$lockname; waiting for it" >&2
  flock 9
fi
if all_there; then echo "$out"; exit 0; fi
mkdir -p "$out.tmp"
k8s_version=$(sed -n 's/^\s*k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/go.mod" | head -1)
major=$(echo "${k8s_version#v}" | cut -d. -f1); minor=$(echo "${k8s_version#v}" | cut -d. -f2)
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $p.gitVersion=$k8s_version -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
cd "$here"
declare -A pkg=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [etcd]=go.etcd.io/etcd/server/v3
)
every=${KUBEVIP_BUILD_PROGRESS:-30}
total_start=$(date +%s)
for b in "${bins[@]}"; do
  if [ -x "$out.tmp/$b" ]; then continue; fi
  start=$(date +%s)
  log="$out.tmp/$b.log"
  echo "build.sh: building $b (${pkg[$b]} ${k8s_version}) ..." >&2
  # -v lists each package as it is compiled: its line count is our progress meter.
  go build -v -trimpath -ldflags "$ld" -o "$out.tmp/$b.partial" "${pkg[$b]}" >"$log" 2>&1 &
  gopid=$!
  while kill -0 "$gopid" 2>/dev/null; do
    for _ in $(seq "$every"); do kill -0 "$gopid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$gopid" 2>/dev/null; then
      echo "build.sh:   $b: $(wc -l <"$log") packages compiled, $(( $(date +%s) - start ))s" >&2
    fi
  done
  if ! wait "$gopid"; then
    echo "build.sh: building $b failed after $(( $(date +%s) - start ))s; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  mv "$out.tmp/$b.partial" "$out.tmp/$b"
  echo "build.sh: built $b in $(( $(date +%s) - start ))s" >&2
done
rm -f "$out.tmp"/*.log
rm -rf "$out"; mv "$out.tmp" "$out"
echo "build.sh: control plane ready in $out ($(( $(date +%s) - total_start ))s)" >&2
echo "$out"
