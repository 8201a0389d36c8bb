#!/usr/bin/env bash
# Installs the system packages that the tests and the lab need (idempotent: skips what is there).
set -euo pipefail
# util-linux (setpriv) and libcap2-bin (capsh): the lab runs agents with exactly the capabilities of the
# rendered DaemonSet's securityContext (lab/podspec.py).
# dnsmasq-base: the DHCP server of the DHCP VIP tests (docs/dhcp.md). The binary only: the `dnsmasq`
# package would also install a system service that binds ports 53 and 67 on the host; the tests run
# their own dnsmasq inside a lab namespace and stop it by PID.
# kea-dhcp4-server: the DHCP server of the lease-expiry test (dnsmasq's shortest lease is 2 minutes; Kea's
# valid-lifetime may be a few seconds). Its packaged service is not started (policy-rc.d below); the test
# runs its own kea-dhcp4 in a lab namespace with its own config, lease file and control paths.
pkgs=(iproute2 iputils-ping procps gobgpd bird2 frr tcpdump nftables util-linux libcap2-bin dnsmasq-base
  kea-dhcp4-server)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "prereqs.sh: need root to install: ${missing[*]}" >&2; exit 1; fi
  echo "prereqs.sh: installing ${missing[*]}" >&2
  # Package scripts must not start bird/frr daemons in the host namespace: the tests start their own.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1
  fi
  trap '[ $own_policy = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
