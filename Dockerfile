# syntax=docker/dockerfile:1
# Build: docker build -t autopatch .
# The build context has no .git (.dockerignore), so `autopatch version` gets
# its revision from the build arguments:
#   docker build --build-arg VCS_REVISION=$(git rev-parse HEAD) \
#     --build-arg VCS_TIME=$(git log -1 --format=%cI) -t autopatch .
FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VCS_REVISION=""
ARG VCS_TIME=""
ARG VCS_MODIFIED=""
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags="-s -w -X github.com/autopatch/autopatch/internal/buildinfo.revision=${VCS_REVISION} -X github.com/autopatch/autopatch/internal/buildinfo.vcsTime=${VCS_TIME} -X github.com/autopatch/autopatch/internal/buildinfo.modified=${VCS_MODIFIED}" \
      -o /out/autopatch ./cmd/autopatch

FROM gcr.io/distroless/static-debian12:nonroot AS runtime
COPY --from=build /out/autopatch /autopatch
USER nonroot:nonroot
EXPOSE 8080
# distroless has no shell or curl: the binary checks its own /readyz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
  CMD ["/autopatch", "healthcheck", "--url", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/autopatch"]
CMD ["serve"]
