# syntax=docker/dockerfile:1
# rollout-guard image: docker build -t rollout-guard:latest .   (manifests/deployment.yaml uses it)

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is copied out of them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin rollout-guard \
    && cp target/release/rollout-guard /rollout-guard

# glibc and libgcc only (TLS is rustls, no OpenSSL); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /rollout-guard /rollout-guard
# The distroless "nonroot" user; the Deployment's securityContext expects this uid.
USER 65532:65532
# 8443: admission webhook (HTTPS), 8080: /livez, /readyz, /metrics.
EXPOSE 8443 8080
ENTRYPOINT ["/rollout-guard"]
CMD ["serve"]
