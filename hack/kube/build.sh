#!/usr/bin/env bash
# Builds the binaries of the test control plane (internal/kubetest) into a
# cache outside the repository and prints the folder that holds them:
#
#   ${PVNBOT_KUBE_CACHE:-$HOME/.cache/pvnbot/kube}/k8s-v1.37.2/bin
#
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (the
# deploy/ tests run it) come from k8s.io/kubernetes at KUBE_VERSION (module
# hack/kube/k8s), etcd from Debian's
# etcd-server or else from go.etcd.io/etcd/server/v3 (module hack/kube/etcd),
# pvn-nodeagent from hack/kube/nodeagent. Each binary is skipped when its stamp
# says it was built from the same inputs; a stamp is written only after a
# successful build. The first run takes about 15-25 minutes; later runs, seconds.
# Everything but the path goes to stderr.
set -euo pipefail

KUBE_VERSION=v1.37.2
here="$(cd "$(dirname "$0")" && pwd)"
cache="${PVNBOT_KUBE_CACHE:-$HOME/.cache/pvnbot/kube}"
bin="$cache/k8s-$KUBE_VERSION/bin"
mkdir -p "$bin"

log() { echo "hack/kube/build.sh: $*" >&2; }

# Lower priority and one package at a time when asked (BUILD_LOW_MEMORY=1): the
# apiserver build peaks at about 3 GB with the default parallelism.
nice_cmd=(nice -n 10)
export GOFLAGS="${GOFLAGS:-} -mod=readonly"
if [[ "${BUILD_LOW_MEMORY:-}" == 1 ]]; then
	export GOFLAGS="$GOFLAGS -p=1"
fi

gover="$(go env GOVERSION)"

# fresh NAME KEY: true when bin/NAME exists and was built from KEY.
fresh() { [[ -x "$bin/$1" && -f "$bin/.stamp-$1" && "$(cat "$bin/.stamp-$1")" == "$2" ]]; }
stamp() { echo "$2" >"$bin/.stamp-$1"; }

# hash_dir DIR: a digest of the Go sources and module files under DIR.
hash_dir() {
	(cd "$1" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
}

ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
	key="$KUBE_VERSION $gover"
	if fresh "$cmd" "$key"; then
		continue
	fi
	log "building $cmd $KUBE_VERSION (the first build takes 15-25 minutes)"
	start=$SECONDS
	(cd "$here/k8s" && "${nice_cmd[@]}" go build -trimpath -ldflags "$ldflags" -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
	mv "$bin/$cmd.tmp" "$bin/$cmd"
	stamp "$cmd" "$key"
	log "built $cmd in $((SECONDS - start))s"
done

# etcd: Debian's package when it can be had, else built from the module proxy.
if ! fresh etcd debian && ! fresh etcd "module $gover $(hash_dir "$here/etcd")"; then
	if ! command -v etcd >/dev/null && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
		log "installing etcd-server with apt-get"
		apt-get install -y -qq etcd-server >&2 || { apt-get update -qq >&2 && apt-get install -y -qq etcd-server >&2; } || true
	fi
	if [[ -x /usr/bin/etcd ]]; then
		cp /usr/bin/etcd "$bin/etcd.tmp"
		mv "$bin/etcd.tmp" "$bin/etcd"
		stamp etcd debian
	else
		log "building etcd from go.etcd.io/etcd/server/v3"
		(cd "$here/etcd" && "${nice_cmd[@]}" go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3)
		mv "$bin/etcd.tmp" "$bin/etcd"
		stamp etcd "module $gover $(hash_dir "$here/etcd")"
	fi
fi

key="$gover stripped $(hash_dir "$here/nodeagent")"
if ! fresh pvn-nodeagent "$key"; then
	log "building pvn-nodeagent"
	(cd "$here/nodeagent" && "${nice_cmd[@]}" go build -trimpath -ldflags "-s -w" -o "$bin/pvn-nodeagent.tmp" .)
	mv "$bin/pvn-nodeagent.tmp" "$bin/pvn-nodeagent"
	stamp pvn-nodeagent "$key"
fi

echo "$bin"
