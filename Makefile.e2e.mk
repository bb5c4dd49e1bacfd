# Makefile.e2e.mk: the end-to-end suite (e2e/, Ginkgo) on a real cluster
# (included by the top-level Makefile).
#
#   make e2e        the local cluster of hack/cluster unless KUBECONFIG points
#                   elsewhere: brings it up if it is not running, builds and
#                   imports the images, starts its MinIO, runs the suite and
#                   stops what it started (hack/e2e.sh)
#   make e2e-kind   the same suite on a throwaway kind cluster: needs Docker
#                   (hack/kind/e2e.sh)
#
# E2E_ARGS go to `go test`, e.g. make e2e E2E_ARGS=-ginkgo.focus=FLIP-134.

E2E_ARGS ?=

.PHONY: e2e e2e-kind

e2e: ## End-to-end suite on the local cluster (or KUBECONFIG's).
	hack/e2e.sh $(E2E_ARGS)

e2e-kind: ## End-to-end suite on a kind cluster created and deleted for it.
	hack/kind/e2e.sh $(E2E_ARGS)
