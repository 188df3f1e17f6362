//go:build tools

// Package tools pins the kwok fake-node controller the lab builds.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
