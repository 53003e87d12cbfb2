"""Renderers turning ipnet intent into one dataplane's KV-scheduler values."""
