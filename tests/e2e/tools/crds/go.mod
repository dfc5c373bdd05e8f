// The CustomResourceDefinitions tests/e2e/chart.sh installs before it validates the chart on the
// test API server: cert-manager's (deploy/crds/) for certificates.mode=cert-manager, and
// prometheus-operator's (example/prometheus-operator-crd/) for the ServiceMonitor and the
// PrometheusRule. Nothing here is built: the modules are only downloaded, and chart.sh finds
// their folders with `go list -m -f '{{.Dir}}'`.
module github.com/rollout-guard/rollout-guard/tests/e2e/tools/crds

go 1.24.9

require (
	github.com/cert-manager/cert-manager v1.21.2
	github.com/prometheus-operator/prometheus-operator v0.85.0
)
