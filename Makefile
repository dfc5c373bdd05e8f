# rollout-guard: `make run` starts the webhook on the embedded default; `make test` runs everything.
CARGO ?= cargo

.PHONY: build run test check fmt clippy unit lint-fixtures

build:
	$(CARGO) build --release

test: check unit

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --all-targets

fmt:
	$(CARGO) fmt --all

lint-fixtures: build
	./target/release/rollout-guard lint tests/fixtures/argo-rollouts || true
