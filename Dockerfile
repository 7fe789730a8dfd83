# mailbridge service image: build with the Rust toolchain, run on a small
# Debian base as an unprivileged user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY service service
COPY tests tests
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
VOLUME /var/lib/mailbridge
EXPOSE 8090
ENTRYPOINT ["mailbridge"]
CMD ["serve"]
