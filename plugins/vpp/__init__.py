"""The VPP dataplane: a vpp-papi connection and KV-scheduler descriptors for VPP objects."""
