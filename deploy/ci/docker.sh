#!/usr/bin/env bash
# Makes a Docker engine and the Compose v2 CLI plugin answer on this machine,
# so the container tests of deploy/compose run instead of skipping. Each step
# runs only when its check fails, so a second call does nothing:
#   - no engine answers `docker info`: install Debian's docker.io (and
#     busybox-static, the shell of the test's stand-in images), start dockerd
#     in the background (log: $DOCKERD_LOG) and wait for it;
#   - `docker compose version` fails: build the plugin from its Go module
#     (`go install` refuses it: its go.mod has exclude directives) into
#     ~/.docker/cli-plugins, where it stays for every later run.
# Run as root (apt-get, dockerd).
set -euo pipefail

COMPOSE_VERSION="${COMPOSE_VERSION:-v2.40.3}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"

apt_install() {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The stand-in images copy /bin/busybox: it must be the static one.
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
  echo "busybox-static missing: installing"
  apt_install busybox-static
fi

if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "no Docker engine: installing docker.io"
    apt_install docker.io
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "starting dockerd (log: $DOCKERD_LOG)"
    # setsid: dockerd outlives this script and the shell that ran it.
    setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    for _ in $(seq 60); do
      docker info >/dev/null 2>&1 && break
      sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
      echo "dockerd did not answer within 60s; its log:" >&2
      tail -n 30 "$DOCKERD_LOG" >&2
      exit 1
    fi
  fi
fi

if ! docker compose version >/dev/null 2>&1; then
  echo "docker compose missing: building github.com/docker/compose/v2@$COMPOSE_VERSION"
  dir="$(GOWORK=off GOFLAGS=-mod=mod go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -n "$dir" ] || { echo "go mod download gave no Dir" >&2; exit 1; }
  # The module cache is read-only; go build needs to write go.sum entries.
  src="$(mktemp -d)"
  trap 'rm -rf "$src"' EXIT
  cp -r "$dir/." "$src"
  chmod -R u+w "$src"
  mkdir -p "$PLUGIN_DIR"
  (cd "$src" && GOWORK=off CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
    -o "$PLUGIN_DIR/docker-compose" ./cmd)
fi

docker version --format 'docker engine {{.Server.Version}}, client {{.Client.Version}}'
docker compose version
