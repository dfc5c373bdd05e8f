//go:build tools

// Package tools pins the programs tests/e2e/real.sh builds from this module (go build PKG, with
// the versions go.mod and go.sum fix). Never compiled itself: the build tag keeps it out.
package tools

import (
	_ "github.com/argoproj/argo-rollouts/cmd/kubectl-argo-rollouts"
	_ "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
