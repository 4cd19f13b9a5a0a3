//go:build tools

// Package tools pins etcd, built by build.sh when Debian's etcd-server cannot be installed.
package tools

import _ "go.etcd.io/etcd/server/v3"
