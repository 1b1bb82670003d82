# Shared by the bench scripts (sourced): the golang fixture image's name and
# the seed-style Dockerfile buildx builds, equivalent to kiln's graph (the
# same cache mounts).

# The golang fixture image for the harness's Go version.
bench_go_image() {
  local image=${KILN_TEST_GO_TEMPLATE//\{go\}/$KILN_TEST_GO_VERSION}
  echo "${image//\{distro\}/trixie}"
}

# write_dockerfile FILE: examples/hello as a Dockerfile in the seed's style.
write_dockerfile() {
  cat >"$1" <<DOCKERFILE
FROM $(bench_go_image) AS builder
WORKDIR /src
ENV GOMODCACHE=/go/pkg/mod GOCACHE=/root/.cache/go-build CGO_ENABLED=0 GOTOOLCHAIN=local
RUN --mount=type=bind,source=go.mod,target=go.mod \\
    --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \\
    go mod download
RUN --mount=type=bind,target=. \\
    --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \\
    go build -trimpath -buildvcs=false -o /out/hello .
FROM $KILN_TEST_STATIC_IMAGE
COPY --from=builder /out/hello /app/bin
ENTRYPOINT ["/app/bin"]
DOCKERFILE
}
