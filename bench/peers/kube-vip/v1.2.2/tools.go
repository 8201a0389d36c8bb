//go:build tools

// Package tools pins the kube-vip agent that build.sh compiles for the side-by-side benchmark.
package tools

import (
	_ "github.com/kube-vip/kube-vip"
)
