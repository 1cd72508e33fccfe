# syntax=docker/dockerfile:1
# Parley's image: a static binary on distroless, as the user nonroot.
#   docker build -t parley .
#   docker run -p 8080:8080 -v parley-data:/data parley
# With nothing set it serves the embedded default (store and generated
# secret under /data); PARLEY_KAFKA_BROKERS, PARLEY_MONGO_URI and
# PARLEY_SECRET make it one instance of a cluster (see compose.yaml).
#
# No HEALTHCHECK: the image has no shell and the binary no health
# subcommand, so there is nothing to run in the container. Whatever runs it
# probes over HTTP instead: /readyz (503 while starting, draining or cut off
# from the bus or store) for routing, /healthz (the process answers) for
# restarts — the proxy in compose.yaml, the kubelet in the Helm chart.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first: a change to the code alone reuses this layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO off: the binary needs no libc, so it runs on distroless/static.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/parley ./app \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/parley /usr/local/bin/parley
# The data directory belongs to nonroot, so the embedded store can write it.
COPY --from=build --chown=nonroot:nonroot /out/data /data
ENV PARLEY_ADDR=:8080 \
    PARLEY_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
USER nonroot
# SIGTERM (the default stop signal) starts the graceful shutdown: /readyz
# answers 503 for PARLEY_SHUTDOWN_DELAY, then connections are drained within
# PARLEY_SHUTDOWN_TIMEOUT; give the container longer than both to stop.
ENTRYPOINT ["/usr/local/bin/parley"]
