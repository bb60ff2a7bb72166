# syntax=docker/dockerfile:1
# Cross-compiled Go service: the build stage runs on the build platform and
# compiles for the target platform, the final stage is distroless.

ARG GO_VERSION=1.23
ARG ALPINE_VERSION=3.20

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine${ALPINE_VERSION} AS base
RUN apk add --no-cache ca-certificates git tzdata
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath

FROM base AS deps
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,source=go.mod,target=go.mod \
    --mount=type=bind,source=go.sum,target=go.sum \
    go mod download -x

FROM deps AS build
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
ARG VERSION=dev
ARG COMMIT=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=bind,target=. \
    GOOS=$TARGETOS GOARCH=$TARGETARCH GOARM=${TARGETVARIANT#v} \
    go build \
        -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
        -o /out/server ./cmd/server

FROM deps AS lint
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/root/.cache/golangci-lint \
    --mount=type=bind,target=. \
    go vet ./... && go run honnef.co/go/tools/cmd/staticcheck@2024.1.1 ./...

FROM deps AS unit-test
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=bind,target=. \
    --mount=type=tmpfs,target=/tmp,size=512m \
    go test -race -count=1 -coverprofile=/tmp/cover.out ./... \
    && go tool cover -func=/tmp/cover.out | tail -n 1

FROM scratch AS binaries
COPY --from=build /out/server /

FROM gcr.io/distroless/static-debian12:nonroot AS release
COPY --from=base /usr/share/zoneinfo /usr/share/zoneinfo
COPY --from=base /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build --chmod=0555 /out/server /usr/local/bin/server
ENV TZ=UTC
EXPOSE 8080 9090
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/server"]
CMD ["--listen=:8080", "--metrics=:9090"]
