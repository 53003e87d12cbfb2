"""An example network plugin: per-pod sysctls and interface MTU, from the pod's annotations."""
