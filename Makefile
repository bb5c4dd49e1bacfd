# flinkjob: a Kubernetes operator for Flink-style dataflow jobs.
#
#   make build       the binaries into bin/ (flinkjob CLI)
#   make test        everything a fresh machine can check on its own: lint,
#                    generated code up to date, CRD accepted by the apiserver's
#                    own validation, the Helm chart, unit and integration tests
#                    against a real MinIO and a real kube-apiserver + etcd
#                    (all built from source into bin/ on first use)
#   make generate    deep copy functions (controller-gen)
#   make manifests   the CRD (controller-gen)
#   make lint        go vet and gofmt
#   make bench       Nexmark q0-q8 vs Flink's per-core figures (hack/bench; BENCH_FLAGS=-events N ...)
#   make bench-engine engine benchmarks (engine vs hand-written Go loops)

GO      ?= go
BIN     := $(CURDIR)/bin
PKGS    := ./...

include Makefile.codegen.mk
include Makefile.minio.mk
include Makefile.cluster.mk
include Makefile.e2e.mk

.PHONY: all build test test-go lint fmt bench bench-engine run-sample envtest chart-check scale

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

test: lint verify-codegen verify-crd chart-check test-go

# envtest's kube-apiserver and etcd, built from the Go module proxy into bin/.
envtest:
	hack/envtest.sh install

# helm lint/template of the chart; its CRDs and RBAC equal config/.
chart-check:
	hack/chart-check.sh

# One MinIO (built from source by hack/minio.sh) serves every package's S3
# tests; it is stopped by PID whatever the tests' outcome. It is this run's
# own: a fresh work dir makes hack/minio.sh refuse a port where another
# server (another `make test`, `make minio-start`) already answers, and the
# next port is tried, so no run adopts another's server and wipes it on stop.
test-go: minio-install envtest
	@export MINIO_WORKDIR="$$(mktemp -d "$${TMPDIR:-/tmp}/flinkjob-test-minio.XXXXXX")"; port=$(MINIO_PORT); \
	until MINIO_PORT=$$port hack/minio.sh start >/dev/null; do \
		port=$$((port + 2)); \
		if [ $$port -ge $$(($(MINIO_PORT) + 20)) ]; then echo "no MinIO port free from $(MINIO_PORT)" >&2; exit 1; fi; \
	done; \
	export MINIO_PORT=$$port; eval "$$(hack/minio.sh env)"; \
	export KUBEBUILDER_ASSETS="$$(hack/envtest.sh path)"; \
	$(GO) test -count=1 -timeout 20m $(PKGS); rc=$$?; \
	hack/minio.sh stop; exit $$rc

lint:
	$(GO) vet $(PKGS)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

# Nexmark in both modes, in process and as worker processes; results in bin/bench/.
bench:
	$(GO) run ./hack/bench -out $(BIN)/bench $(BENCH_FLAGS)

bench-engine:
	$(GO) test -run='^$$' -bench=. -benchmem ./engine/...

run-sample:
	$(GO) run ./cmd/flinkjob run -f config/samples/wordcount-batch.yaml

# The scale run: 500 FlinkJobs against a real kube-apiserver (envtest).
scale: envtest
	KUBEBUILDER_ASSETS="$$(hack/envtest.sh path)" $(GO) run ./hack/scale -jobs 500
