# pvnbot's image: bot and pvn-wrapper, static, on distroless, as a non-root
# user. Build from the repository root: docker build -t REGISTRY/pvnbot:TAG .
# deploy/ runs it with `bot serve --config /etc/pvnbot/bot.yaml`.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static binaries: pure Go throughout (SQLite included), no libc needed.
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags "-s -w" -o /out/bot ./cmd/bot \
    && go build -trimpath -ldflags "-s -w" -o /out/pvn-wrapper ./cmd/pvn-wrapper

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bot /out/pvn-wrapper /usr/local/bin/
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/bot"]
CMD ["serve", "--config", "/etc/pvnbot/bot.yaml"]
