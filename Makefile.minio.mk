# Makefile.minio.mk: local MinIO for tests and the local CLI (included by the
# top-level Makefile). The server listens on 127.0.0.1:$(MINIO_PORT); run
# `eval "$$(hack/minio.sh env)"` to point tools at it.

MINIO_PORT ?= 19000
export MINIO_PORT

.PHONY: minio-install minio-start minio-stop

minio-install: ## Build bin/minio from source at the pinned version (skipped when current).
	hack/minio.sh install

minio-start: minio-install ## Start a throwaway MinIO on 127.0.0.1:$(MINIO_PORT).
	hack/minio.sh start

minio-stop: ## Stop the local MinIO and delete its data.
	hack/minio.sh stop
