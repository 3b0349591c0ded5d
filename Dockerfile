# The operator image: a static binary on distroless, running as non-root.
# Build: docker build -t ghcr.io/oksa-dev/oksa:0.1.0 .
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin oksa \
 && cp target/x86_64-unknown-linux-musl/release/oksa /oksa

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /oksa /usr/local/bin/oksa
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/oksa"]
CMD ["run"]
