module github.com/rollout-guard/rollout-guard/tests/oracle/input

go 1.24.9

require sigs.k8s.io/yaml v1.6.0
