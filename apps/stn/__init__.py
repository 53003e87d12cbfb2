"""contiv-stn: the steal-the-NIC daemon app."""
