# Makefile.cluster.mk: a local single-node Kubernetes cluster without Docker
# and the images without a daemon (included by the top-level Makefile).
# See hack/cluster/README.md.
#
#   make cluster-up       start the cluster (root; builds what it needs into bin/ first)
#   make images           build bin/images/flinkjob-{manager,worker}.tar
#   make images-import    load them into the cluster's containerd
#   make cluster-smoke    worker pods, headless-Service DNS and MinIO on the cluster
#   make cluster-down     stop it and delete .cluster/
#
# Starting and stopping need root; as a normal user they run through sudo
# (set SUDO= to run them directly). Builds run as the calling user.

SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: cluster-up cluster-down cluster-status cluster-minio cluster-smoke images images-import

cluster-up: ## Start the local cluster; KUBECONFIG=.cluster/kubeconfig.
	hack/cluster/up.sh --build-only
	$(SUDO) hack/cluster/up.sh

cluster-down: ## Stop the local cluster and delete its state (.cluster/).
	$(SUDO) hack/cluster/down.sh

cluster-status: ## Processes, node and pods of the local cluster.
	$(SUDO) hack/cluster/status.sh

cluster-minio: ## MinIO for the cluster's pods (minio.default.svc:9000).
	hack/minio.sh install
	$(SUDO) hack/cluster/minio.sh up

cluster-smoke: images-import cluster-minio ## Run worker pods on the local cluster and check DNS and MinIO.
	$(SUDO) hack/cluster/smoke.sh

images: ## Build the manager and worker images into bin/images/ (no Docker needed).
	hack/images.sh build

images-import: images ## Load the images into the local cluster's containerd.
	$(SUDO) hack/images.sh import
