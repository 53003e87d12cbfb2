"""The nftables driver: batches and read-back (``driver``), pooled libnftables contexts
(``contexts``), set elements over netlink (``rawelements``) and the agent-owned table as one
scheduler value (``table``)."""
