# syntax=docker/dockerfile:1
# Multi-stage build of the flinkjob images, each a static Go binary on a
# distroless base, running as a non-root user:
#
#   docker build --target manager -t flinkjob-manager:v0.1.0 .
#   docker build --target worker  -t flinkjob-worker:v0.1.0 .
#
# hack/images.sh builds the same images without a Docker daemon
# (go-containerregistry), for machines that have none.
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY engine/ engine/
COPY internal/ internal/
COPY worker/ worker/
ARG TARGETOS=linux TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w" -o /out/manager ./cmd/manager && \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w" -o /out/worker ./cmd/worker && \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w" -o /out/flinkjob ./cmd/flinkjob

FROM gcr.io/distroless/static-debian12:nonroot AS manager
COPY --from=build /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]

FROM gcr.io/distroless/static-debian12:nonroot AS worker
COPY --from=build /out/worker /worker
COPY --from=build /out/flinkjob /flinkjob
USER 65532:65532
ENTRYPOINT ["/worker"]
