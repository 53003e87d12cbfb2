"""contiv-ksr: reflects Kubernetes state (API or a YAML directory) into etcd."""
