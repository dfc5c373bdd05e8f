# rollout-guard: `make run` starts the webhook on the embedded default; `make test` runs everything.
CARGO ?= cargo

.PHONY: build run test check fmt clippy unit e2e e2e-1.20 e2e-real e2e-tools lint-fixtures

build:
	$(CARGO) build --release

test: check unit oracle e2e

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --all-targets

fmt:
	$(CARGO) fmt --all

# End to end at both ends of the supported range (README.md, "Tests"): 1.20 and 1.34.
e2e: e2e-1.20 e2e-real e2e-chart e2e-multi

# The oldest supported server: etcd and kube-apiserver 1.20 on 127.0.0.1 (built once from
# Debian's sources and cached, about 7 minutes the first time), both webhooks registered by URL,
# driven by kubectl, the controller's writes simulated with `kubectl --as`.
e2e-1.20:
	$(CARGO) build
	tests/e2e/run.sh

# The newest, against the real thing: kube-apiserver v1.34.1 + etcd 3.6.4, the Argo Rollouts
# controller v1.9.1 and its kubectl plugin, gitops-engine as the GitOps writer, all built from the
# Go modules pinned in tests/e2e/tools/ (once, cached in ~/.cache/rollout-guard-kube/tools; needs
# Go >= 1.24 and the Go module proxy). See tests/e2e/README.md.
e2e-real: e2e-tools
	$(CARGO) build
	tests/e2e/real.sh

e2e-tools:
	scripts/build-e2e-tools.sh >/dev/null

# The Helm chart (charts/rollout-guard) with real helm v3.22.0 and `serve --certificates self`
# against kube-apiserver v1.34.1: lint, manifests/ equal to the chart, each certificate mode
# validated by the API server, install/upgrade/uninstall, CA injection and a renewal under load.
.PHONY: e2e-chart
e2e-chart: e2e-tools
	$(CARGO) build
	tests/e2e/chart.sh

# Argo Rollouts' Istio multicluster setup on two kube-apiserver v1.34.1 control planes side by side:
# the real controller in the Rollouts cluster writing the primary's VirtualServices through the
# primary-cluster Secret, one rollout-guard in each cluster (--istio-primary-secrets,
# --rollouts-cluster-secrets). Same tools as e2e-real. See tests/e2e/README.md.
.PHONY: e2e-multi
e2e-multi: e2e-tools
	$(CARGO) build
	tests/e2e/multicluster.sh

lint-fixtures: build
	./target/release/rollout-guard lint tests/fixtures/argo-rollouts || true

# Fuzzing (not part of `make test`): each target for FUZZ_SECONDS, corpus kept in fuzz/corpus/.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && for t in admission lint_yaml; do \
	  RUSTC_BOOTSTRAP=1 cargo fuzz run $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=65536 || exit 1; \
	done

# Development certificates: a CA and a serving pair (SANs 127.0.0.1, localhost and the in-cluster
# Service names) in certs/, made once; certs/*.key is git-ignored. Then the webhook configurations
# are rendered with the caBundle when scripts/render-webhooks.sh is there.
BIN := target/release/rollout-guard
.PHONY: certs
certs: build
	@if [ -f certs/ca.crt ] && [ -f certs/tls.crt ] && [ -f certs/tls.key ]; then \
	  echo "certs/: present (renew with: $(BIN) dev-certs --out certs --force)"; \
	else $(BIN) dev-certs --out certs; fi
	@if [ -f scripts/render-webhooks.sh ]; then bash scripts/render-webhooks.sh; fi

# The webhook on https://127.0.0.1:8443 (admin on http://127.0.0.1:8080) over examples/manifests.
run: build certs
	$(BIN) serve --source files --manifests examples/manifests \
	  --tls-cert certs/tls.crt --tls-key certs/tls.key \
	  --listen 127.0.0.1:8443 --admin-listen 127.0.0.1:8080

# Benchmarks against DESIGN.md's performance targets (not tests: nothing fails on a figure), the
# kube source on kube-apiserver 1.34 and OPA as a peer, in one run. About 25 minutes on 2 shared
# cores (BENCH_QUICK=1: a few minutes, small sizes); writes BENCHMARKS.md, raw results in
# target/bench-results/. Needs Go and the Go module proxy the first time (kube-apiserver, etcd,
# kube-load and opa are built once and cached by scripts/build-e2e-tools.sh).
.PHONY: bench
bench:
	CARGO="$(CARGO)" scripts/bench.sh

# Soak (not part of `make test`; not while benchmarks run): `serve --source files` with 1,000 apps
# under SOAK_SECONDS of load on 127.0.0.1, RSS sampled every second; rewrites only the Soak section
# of BENCHMARKS.md (between its soak markers). Raw samples in target/soak/.
SOAK_SECONDS ?= 60
.PHONY: soak
soak:
	CARGO="$(CARGO)" SOAK_SECONDS=$(SOAK_SECONDS) scripts/soak.sh

# Differential oracle (part of `make test`; larger ORACLE_CASES on demand): Argo Rollouts' and Istio's own validation
# code (tests/oracle, Go, pinned modules) against `rollout-guard lint` over the fixtures,
# upstream's test fixtures rebuilt as YAML and ORACLE_CASES generated cases from ORACLE_SEED.
# Fails on a disagreement not listed in README.md's deliberate-differences table.
ORACLE_CASES ?= 5000
ORACLE_SEED ?= 1
ORACLE_ARGO ?= 1.10
.PHONY: oracle
oracle:
	ORACLE_CASES=$(ORACLE_CASES) ORACLE_SEED=$(ORACLE_SEED) ORACLE_ARGO=$(ORACLE_ARGO) CARGO="$(CARGO)" tests/oracle/run.sh
