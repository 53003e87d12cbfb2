"""Renderers of policy rules: one per dataplane (``nftables`` for Linux; a VPP ACL renderer can
follow with the same input: :class:`plugins.policy.processor.Delta`)."""
