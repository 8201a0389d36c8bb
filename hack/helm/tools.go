//go:build tools

// Package tools pins the helm command that build.sh compiles.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
