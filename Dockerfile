# mailbridge service image: a Rust build stage, then a small Debian runtime
# with only the binary, the shipped templates and CA certificates.
#
#   docker build -t mailbridge .
#   docker run -p 8090:8090 -e MAILBRIDGE_JWT_SECRET=... mailbridge
#
# Settings are the MAILBRIDGE_* and OTEL_* variables (docs/operations.md).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY service ./service
COPY tests ./tests
# Cache mounts keep the registry and compiled dependencies between builds;
# the binary is copied out because the target directory is not in the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p mailbridge \
    && install -D target/release/mailbridge /out/mailbridge

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/mailbridge --create-home mailbridge
COPY --from=build /out/mailbridge /usr/local/bin/mailbridge
COPY templates /usr/share/mailbridge/templates
ENV MAILBRIDGE_LISTEN=0.0.0.0:8090 \
    MAILBRIDGE_DATABASE_URL=sqlite:///var/lib/mailbridge/mailbridge.db \
    MAILBRIDGE_TEMPLATES=/usr/share/mailbridge/templates \
    MAILBRIDGE_TRANSPORT=file:///var/lib/mailbridge/outbox
USER mailbridge
WORKDIR /var/lib/mailbridge
# The queue lives here: keep it on a volume, or accepted mail is lost with the container.
VOLUME ["/var/lib/mailbridge"]
EXPOSE 8090
# No HEALTHCHECK: the image has no HTTP client; probe GET /readyz from outside
# (orchestrator, load balancer).
STOPSIGNAL SIGTERM
ENTRYPOINT ["mailbridge"]
CMD ["serve"]
