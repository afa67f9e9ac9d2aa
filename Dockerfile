# syntax=docker/dockerfile:1
# Build: docker build -t autopatch .
FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/autopatch ./cmd/autopatch

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/autopatch /autopatch
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/autopatch"]
CMD ["serve"]
