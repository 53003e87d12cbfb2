"""contiv-ksr: the Kubernetes State Reflector app."""
