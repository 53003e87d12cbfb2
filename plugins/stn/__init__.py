"""contiv-stn: the steal-the-NIC daemon (gRPC service, record, watchdog) and its client."""
