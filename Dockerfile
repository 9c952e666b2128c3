# Multi-stage build of the single `candlepipe` binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY src src
COPY nats nats
COPY tests tests
RUN cargo build --release --locked --bin candlepipe

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 candlepipe
COPY --from=build /src/target/release/candlepipe /usr/local/bin/candlepipe
USER candlepipe
ENTRYPOINT ["candlepipe"]
