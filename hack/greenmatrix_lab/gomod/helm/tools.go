//go:build tools

// Package tools pins the Helm CLI the lab uses to render and lint charts/greenmatrix.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
