//go:build tools

// Package tools pins the etcd server program (package main at the module root of
// go.etcd.io/etcd/server/v3). Never compiled itself: the build tag keeps it out.
package tools

import _ "go.etcd.io/etcd/server/v3"
