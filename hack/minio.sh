#!/usr/bin/env bash
# hack/minio.sh: a throwaway local MinIO server for tests and the local CLI.
#
#   hack/minio.sh install   build bin/minio from source (skipped when already at MINIO_VERSION)
#   hack/minio.sh start     start it on 127.0.0.1:$MINIO_PORT with a fresh data dir; prints export lines
#   hack/minio.sh stop      kill it (PID file) and remove its data dir
#   hack/minio.sh env       print the export lines (MINIO_ENDPOINT, MINIO_ACCESS_KEY, MINIO_SECRET_KEY)
#
# Every subcommand is idempotent: install twice builds once, start on a running
# server only prints the exports, stop on a stopped server does nothing.
#
# Environment (all optional):
#   MINIO_PORT          listen port (default 19000); the console uses MINIO_PORT+1
#   MINIO_ROOT_USER     root user  (default flinkjob)
#   MINIO_ROOT_PASSWORD root secret (default flinkjob-secret)
#   MINIO_WORKDIR       where PID file, log and data live (default <repo>/.minio/<port>)
#
# Per-port work dirs let several servers (e.g. `make minio-start` on 19000 and
# the Go tests on 19100) run side by side without stepping on each other.
set -euo pipefail

# MinIO publishes no semver tags (its tags are RELEASE.<date>), so the module
# proxy only knows pseudo-versions. Pinned so every machine builds the same
# server; bump deliberately.
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${REPO_ROOT}/bin"
MINIO_BIN="${BIN_DIR}/minio"
STAMP="${BIN_DIR}/.minio.version"

MINIO_PORT="${MINIO_PORT:-19000}"
MINIO_ROOT_USER="${MINIO_ROOT_USER:-flinkjob}"
MINIO_ROOT_PASSWORD="${MINIO_ROOT_PASSWORD:-flinkjob-secret}"
MINIO_WORKDIR="${MINIO_WORKDIR:-${REPO_ROOT}/.minio/${MINIO_PORT}}"
PID_FILE="${MINIO_WORKDIR}/minio.pid"
LOG_FILE="${MINIO_WORKDIR}/minio.log"
DATA_DIR="${MINIO_WORKDIR}/data"
ENDPOINT="127.0.0.1:${MINIO_PORT}"

log() { echo "minio.sh: $*" >&2; }

cmd_install() {
	if [[ -x "${MINIO_BIN}" && -f "${STAMP}" && "$(cat "${STAMP}")" == "${MINIO_VERSION}" ]]; then
		log "bin/minio is already ${MINIO_VERSION}"
		return 0
	fi
	mkdir -p "${BIN_DIR}"
	log "building github.com/minio/minio@${MINIO_VERSION} (a few minutes on a cold build cache)"
	local start=${SECONDS}
	# Run outside the repo so this module's go.mod does not take part.
	(cd / && GOBIN="${BIN_DIR}" GOFLAGS=-buildvcs=false go install "github.com/minio/minio@${MINIO_VERSION}")
	echo "${MINIO_VERSION}" >"${STAMP}"
	log "built bin/minio in $((SECONDS - start))s"
}

running() {
	[[ -f "${PID_FILE}" ]] && kill -0 "$(cat "${PID_FILE}")" 2>/dev/null
}

# live: the process answers AND the S3 API is initialized. health/live
# answers before S3 requests work ("Server not initialized yet", 503); an
# anonymous S3 request gets 403 once the API serves.
live() {
	curl -fs -o /dev/null --max-time 2 "http://${ENDPOINT}/minio/health/live" 2>/dev/null || return 1
	local code
	code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://${ENDPOINT}/" 2>/dev/null)"
	[[ "${code}" == "403" || "${code}" == "200" ]]
}

cmd_env() {
	echo "export MINIO_ENDPOINT=${ENDPOINT}"
	echo "export MINIO_ACCESS_KEY=${MINIO_ROOT_USER}"
	echo "export MINIO_SECRET_KEY=${MINIO_ROOT_PASSWORD}"
}

cmd_start() {
	if running; then
		log "already running (pid $(cat "${PID_FILE}")) on ${ENDPOINT}"
		cmd_env
		return 0
	fi
	if live; then
		# Someone else owns the port; reporting it as ours would let stop
		# miss it and tests write into a server they do not control.
		log "port ${MINIO_PORT} already serves a MinIO not started from ${MINIO_WORKDIR}; set MINIO_PORT"
		return 1
	fi
	[[ -x "${MINIO_BIN}" ]] || cmd_install
	# Claim the port machine-wide for the server's life: the server
	# inherits fd 9, so the lock holds until it exits. Without it, two
	# starts at the same moment from different work dirs both found the
	# port free, one server failed to bind, and its start took the other's
	# server for its own (and its stop later pulled it from under the
	# other run). No flock (macOS): no claim, as before.
	if command -v flock >/dev/null 2>&1; then
		exec 9>"${TMPDIR:-/tmp}/flinkjob-minio-port-${MINIO_PORT}.lock"
		if ! flock -n 9; then
			log "port ${MINIO_PORT} is claimed by another MinIO start; set MINIO_PORT"
			return 1
		fi
	fi
	# A stale data dir from a crashed run would leak objects into this one.
	rm -rf "${DATA_DIR}"
	mkdir -p "${DATA_DIR}"
	MINIO_ROOT_USER="${MINIO_ROOT_USER}" MINIO_ROOT_PASSWORD="${MINIO_ROOT_PASSWORD}" \
		MINIO_BROWSER=off MINIO_UPDATE=off \
		nohup "${MINIO_BIN}" server --quiet \
		--address "${ENDPOINT}" \
		--console-address "127.0.0.1:$((MINIO_PORT + 1))" \
		"${DATA_DIR}" >"${LOG_FILE}" 2>&1 </dev/null &
	echo $! >"${PID_FILE}"
	local i
	for i in $(seq 1 150); do
		if live; then
			log "ready on ${ENDPOINT} (pid $(cat "${PID_FILE}"))"
			cmd_env
			return 0
		fi
		if ! running; then
			log "minio exited; log follows"
			cat "${LOG_FILE}" >&2
			rm -f "${PID_FILE}"
			return 1
		fi
		sleep 0.2
	done
	log "minio did not become live within 30s; log follows"
	cat "${LOG_FILE}" >&2
	cmd_stop
	return 1
}

cmd_stop() {
	if [[ -f "${PID_FILE}" ]]; then
		local pid
		pid="$(cat "${PID_FILE}")"
		if kill -0 "${pid}" 2>/dev/null; then
			kill "${pid}" 2>/dev/null || true
			local i
			for i in $(seq 1 50); do
				kill -0 "${pid}" 2>/dev/null || break
				sleep 0.1
			done
			kill -9 "${pid}" 2>/dev/null || true
			log "stopped pid ${pid}"
		fi
	fi
	rm -rf "${MINIO_WORKDIR}"
	rmdir "$(dirname "${MINIO_WORKDIR}")" 2>/dev/null || true
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
*)
	echo "usage: $0 install|start|stop|env" >&2
	exit 2
	;;
esac
