# syntax=docker/dockerfile:1
# Static Rust binary built against musl with cached registry and target
# directories, then copied into an empty image.
ARG RUST_VERSION=1.81

FROM rust:${RUST_VERSION}-alpine AS chef
RUN apk add --no-cache musl-dev openssl-dev openssl-libs-static pkgconf perl make
RUN cargo install cargo-chef --locked --version 0.1.68
WORKDIR /build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ENV OPENSSL_STATIC=1 \
    RUSTFLAGS="-C target-feature=+crt-static"
COPY --from=planner /build/recipe.json recipe.json
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/build/target,id=rust-target \
    cargo build --release --locked --bin gateway \
    && install -D -m 0755 target/release/gateway /out/gateway \
    && mkdir -p /out/etc \
    && echo "gateway:x:10001:10001::/nonexistent:/sbin/nologin" > /out/etc/passwd \
    && echo "gateway:x:10001:" > /out/etc/group

FROM scratch
COPY --from=builder /out/etc/passwd /out/etc/group /etc/
COPY --from=builder /out/gateway /gateway
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
USER gateway:gateway
EXPOSE 8443/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/gateway"]
CMD ["--config", "/etc/gateway/config.toml"]
