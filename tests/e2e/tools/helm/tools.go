//go:build tools

// Package tools pins the helm command (helm.sh/helm/v3/cmd/helm) that tests/e2e/chart.sh lints,
// renders, installs, upgrades and uninstalls charts/rollout-guard with. Never compiled itself:
// the build tag keeps it out.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
