"""Renderers of the service and policy processors' dataplane-neutral intent into VPP values.

They read the intent structurally (the Protocols in each module), so ``plugins.vpp`` imports no
contiv plugin; the service and policy plugins pick them for ``ipnet.dataplane: vpp``.
"""
