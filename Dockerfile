# media-sync container image.
#
#   docker build -t media-sync .
#   docker run --rm media-sync config
#
# Two stages on debian:bookworm-slim: the first has the toolchain and the
# -dev packages and builds only the media-sync binary (no tests); the second
# has the shared libraries that binary links and nothing to build with.
# The worker runs as the unprivileged user media-sync (uid/gid 10001): the
# buffer it mounts must be writable by that uid, since the worker deletes
# each file once it is synced.

FROM debian:bookworm-slim AS build
# Parallel compile jobs; empty: one per CPU.
ARG BUILD_JOBS=""
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libcurl4-openssl-dev libssl-dev libhiredis-dev libpq-dev \
      nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY scripts/check_layering.sh scripts/
COPY src/ src/
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DMEDIA_SYNC_TESTS=OFF \
 && cmake --build /build --target media-sync -j "${BUILD_JOBS:-$(nproc)}" \
 && strip /build/media-sync

FROM debian:bookworm-slim
# The runtime halves of the -dev packages above.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libcurl4 libssl3 libhiredis0.14 libpq5 libspdlog1.10 libfmt9 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 media-sync \
 && useradd --system --uid 10001 --gid media-sync --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin media-sync \
 && install -d -o media-sync -g media-sync -m 0750 /var/cache/osint-media-buffer
COPY --from=build /build/media-sync /usr/local/bin/media-sync
COPY deploy/docker/healthcheck.sh /usr/local/bin/media-sync-healthcheck
# Fails the build, rather than the first start, when a library is missing.
RUN ! ldd /usr/local/bin/media-sync | grep 'not found' \
 && media-sync --version

ENV MEDIA_BUFFER_PATH=/var/cache/osint-media-buffer \
    METRICS_ADDRESS=0.0.0.0:9108
VOLUME /var/cache/osint-media-buffer
EXPOSE 9108
USER 10001:10001
# /healthz answers 200 while the worker makes progress (bash /dev/tcp, no
# HTTP client in the image); it follows METRICS_ADDRESS.
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 \
  CMD ["media-sync-healthcheck"]
# SIGTERM: stop taking jobs, finish in-flight ones within
# SHUTDOWN_GRACE_SECONDS (default 30), exit 0. Give `docker stop` more time
# than that (docker stop -t 45; compose: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["media-sync"]
CMD ["run"]
