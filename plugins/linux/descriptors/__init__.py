"""KV-scheduler descriptors of the Linux dataplane (one module per value type)."""
