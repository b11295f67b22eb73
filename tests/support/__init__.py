"""Test infrastructure shared by the fixtures and hack/dev-cluster.sh: a local control
plane (etcd, kube-apiserver, controllers, scheduler, KWOK fake GPU nodes), MinIO, and
helpers for driving fake pods. See docs/dev-cluster.md."""
