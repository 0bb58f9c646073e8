# syntax=docker/dockerfile:1
# enms-analytics: a static Go binary on a small base, run as a non-root user.
#   docker build -t enms-analytics --build-arg VERSION=$(git describe --always) .

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so that source edits do not re-download them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
        -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/enms-analytics ./cmd/enms-analytics

FROM alpine:3.20
# wget (busybox) serves the health check; tzdata gives factory time zones
# to the Go runtime and to log times; ca-certificates for TLS to PostgreSQL.
RUN apk add --no-cache ca-certificates tzdata \
 && addgroup -S -g 10001 enms \
 && adduser -S -D -H -u 10001 -G enms enms \
 && mkdir -p /app/models/saved \
 && chown -R enms:enms /app
COPY --from=build /out/enms-analytics /usr/local/bin/enms-analytics
WORKDIR /app
USER 10001:10001
ENV API_PORT=8001 \
    MODEL_STORAGE_PATH=/app/models/saved
VOLUME /app/models/saved
EXPOSE 8001
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD wget -q -O /dev/null http://127.0.0.1:8001/health || exit 1
ENTRYPOINT ["/usr/local/bin/enms-analytics"]
CMD ["serve"]
