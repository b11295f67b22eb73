// Command etcd is the upstream etcd server entry point built from the pinned
// go.etcd.io/etcd/server/v3 module (etcd's own main lives in a module that
// uses relative replaces, so `go install` cannot build it directly).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
