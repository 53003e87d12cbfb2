"""A node of the lab cluster fails as a machine does: :func:`reboot` (then
``KubeLab.start_runtime_and_kubelet`` boots it again)."""

from __future__ import annotations

import json
import shutil

from apps.lab.kube.cluster import UNDERLAY, KubeLab
from plugins.linux.netns import NETNS_RUN_DIR


def reboot(lab: KubeLab, name: str) -> None:
    """A node 'reboots': every process on it dies (kubelet, containerd, pods, agent), and its
    namespace's routes and nftables/iptables rules are flushed. Its files stay, as a disk does."""
    node = lab.node(name)
    st = lab.state.nodes[name]
    node.kill_all()
    node.reset_cgroups()  # a reboot starts with no container cgroups
    st.containerd_pid = st.kubelet_pid = None
    lab.state.save()
    node.run(["nft", "flush", "ruleset"], check=False)
    node.run(["ip", "route", "flush", "table", "main"], check=False)
    node.run(["ip", "neigh", "flush", "all"], check=False)
    # Links other than the NIC (pod veths, vxlan) go as on a reboot; the NIC keeps its address.
    links = json.loads(node.run(["ip", "-j", "link", "show"]).stdout)
    for link in links:
        if link["ifname"] not in ("lo", "eth0"):
            node.run(["ip", "link", "delete", link["ifname"]], check=False)
    # The NIC comes back configured, as the node's network setup does at boot.
    node.run(["ip", "addr", "flush", "dev", "eth0"], check=False)
    node.run(["ip", "addr", "add", f"{st.ip}/24", "dev", "eth0"])
    node.run(["ip", "route", "add", "default", "via", f"{UNDERLAY}254"], check=False)
    # Pod network namespaces, container mounts and /run's files are gone after a real reboot.
    node.unmount_volatile()
    for f in node.path(NETNS_RUN_DIR).iterdir():
        f.unlink(missing_ok=True)
    for tmpfs in ("/run/containerd", "/run/contiv"):  # emptied; the directories stay (bind mounts)
        for entry in node.path(tmpfs).iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
