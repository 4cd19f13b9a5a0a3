# pvnbot — see README.md.
GO      ?= go
BIN     ?= bin
PKGS    := ./...
PURE    := config desired reconcile store ingest
IMPURE  := google/go-github|palantir/go-githubapp|k8s.io/client-go|k8s.io/api/

.PHONY: build test lint demo kube-bin bench clean

build:
	$(GO) build -o $(BIN)/ ./cmd/bot
	CGO_ENABLED=0 $(GO) build -ldflags "-s -w" -o $(BIN)/ ./cmd/pvn-wrapper

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	cd hack/kube/nodeagent && $(GO) vet ./...
	@# STYLE.md: the engine's packages reach neither GitHub nor Kubernetes,
	@# not even through another package.
	@for p in $(PURE); do \
		bad=$$($(GO) list -deps ./internal/$$p | grep -E '$(IMPURE)'); \
		if [ -n "$$bad" ]; then echo "internal/$$p must not depend on:"; echo "$$bad"; exit 1; fi; \
	done

# The binaries of the test control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, pvn-nodeagent), built once into
# ~/.cache/pvnbot/kube/<version>/bin: about 20 minutes the first time, then
# nothing to do.
kube-bin:
	hack/kube/build.sh >/dev/null

test: lint kube-bin
	$(GO) test -race -count=1 $(PKGS)

demo: build
	./fixtures/demo/run-demo.sh $(BIN)/bot

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf $(BIN)
