# syntax=docker/dockerfile:1
#
# halo-gateway container image: a Rust build stage, then a minimal runtime holding one statically
# linked binary and the CA bundle (for the issuer's HTTPS). No shell, no package manager, no
# HEALTHCHECK (Kubernetes probes /healthz and /readyz on the admin port).
#
#   docker build -t halo-gateway .
#   docker build --build-arg RUNTIME_IMAGE=scratch -t halo-gateway:scratch .
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/<owner>/halo-gateway .
#
# The binary is glibc linked with +crt-static (not musl): same allocator and resolver as the
# tested host build, and it runs on any Linux base, including scratch.

ARG RUST_IMAGE=docker.io/library/rust:1-bookworm
# Distroless static has CA certificates, tzdata and a `nonroot` (65532) user; `scratch` works too
# because the CA bundle is copied in from the build stage below.
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

# The build runs on the builder's own platform and cross-compiles for TARGETARCH, which is much
# faster than building arm64 under QEMU.
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
ARG TARGETARCH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src

# Toolchain for the target: the host's for a native build, gcc + libc for cross builds (their
# versions follow the Debian release of RUST_IMAGE, so they are not pinned).
# hadolint ignore=DL3008
RUN arch="${TARGETARCH:-$(dpkg --print-architecture)}"; \
    case "$arch" in \
      amd64) triple=x86_64-unknown-linux-gnu; gnu=x86-64 ;; \
      arm64) triple=aarch64-unknown-linux-gnu; gnu=aarch64 ;; \
      *) echo "unsupported TARGETARCH $arch" >&2; exit 1 ;; \
    esac; \
    echo "$triple" > /target-triple; \
    if [ "$arch" != "$(dpkg --print-architecture)" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends "gcc-${gnu}-linux-gnu" "libc6-dev-${arch}-cross" \
      && rm -rf /var/lib/apt/lists/*; \
    fi; \
    rustup target add "$triple"

ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    CARGO_TERM_COLOR=never

COPY . .

# .git is not in the build context: build.rs takes the commit for --version from here.
ARG REVISION=unknown
# --target keeps crt-static away from build scripts and proc macros (which must stay dynamic).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,id=halo-gateway-target-${TARGETARCH} \
    triple="$(cat /target-triple)"; \
    HALO_GATEWAY_GIT_SHA="$(printf %s "$REVISION" | cut -c1-12)" RUSTFLAGS='-C target-feature=+crt-static' \
      cargo build --release --locked --target "$triple" --bin halo-gateway \
    && mkdir -p /out \
    && cp "target/$triple/release/halo-gateway" /out/halo-gateway

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="halo-gateway" \
      org.opencontainers.image.description="Reverse-proxy API gateway for Glasswall Halo: validates Okta bearer tokens and enforces Halo roles" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/halo-gateway /usr/local/bin/halo-gateway
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

# Numeric, so Kubernetes' runAsNonRoot can verify it without an /etc/passwd.
USER 65532:65532
# 8080: proxy (Gateway__Listen), 9090: admin /healthz /readyz /metrics (Gateway__AdminListen).
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/halo-gateway"]
CMD ["serve"]
