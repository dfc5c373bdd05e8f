//go:build tools

// Package tools pins the peer `make bench` measures rollout-guard against: Open Policy Agent,
// the policy engine under Gatekeeper, built by scripts/build-e2e-tools.sh (NAME opa) with the
// versions go.mod and go.sum fix. Never compiled itself: the build tag keeps it out.
package tools

import _ "github.com/open-policy-agent/opa"
