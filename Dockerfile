# mailbridge service image: built with the Rust toolchain, run on a small
# Debian base as an unprivileged user (uid 10001), with only the binary, the
# shipped templates and CA certificates.
#
#   docker build -t mailbridge .
#   docker run -p 8090:8090 -v mailbridge:/var/lib/mailbridge -e MAILBRIDGE_JWT_SECRET=... mailbridge
#
# Settings are the MAILBRIDGE_* and OTEL_* variables (docs/operations.md).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# The allocator's settings, read when jemalloc is built (make and a C compiler
# come with this image).
COPY .cargo .cargo
COPY render render
COPY service service
COPY tests tests
# The renderer as WebAssembly first (Debian's Rust builds it, as for the
# Keycloak extension's jar): the service's build embeds it for the console's
# template studio, which then renders in the browser.
COPY scripts/build-wasm.sh scripts/build-wasm.sh
RUN bash scripts/build-wasm.sh
RUN cargo build --release --locked -p mailbridge

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/mailbridge --create-home mailbridge
COPY --from=build /src/target/release/mailbridge /usr/local/bin/mailbridge
COPY templates /usr/share/mailbridge/templates
USER mailbridge
WORKDIR /var/lib/mailbridge
ENV MAILBRIDGE_LISTEN=0.0.0.0:8090 \
    MAILBRIDGE_DATABASE_URL=sqlite:///var/lib/mailbridge/data/mailbridge.db \
    MAILBRIDGE_TEMPLATES=/usr/share/mailbridge/templates
# The queue lives here: keep it on a volume, or accepted mail is lost with the container.
VOLUME /var/lib/mailbridge
EXPOSE 8090
# No HEALTHCHECK: the image has no HTTP client; probe GET /readyz from outside.
STOPSIGNAL SIGTERM
ENTRYPOINT ["mailbridge"]
CMD ["serve"]
