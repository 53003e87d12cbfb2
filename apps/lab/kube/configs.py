"""Configuration files of a lab node's containerd and kubelet.

The machine facts they respect (``shared/k8s``'s notes, seen here): cgroup v1 without systemd
(``cgroupfs`` everywhere), no CAP_SYS_RESOURCE for root (containerd's CRI plugin must
``restrict_oom_score_adj``), no swap, no image registry (images are imported; the sandbox image
is the imported pause image).
"""

from __future__ import annotations

from pathlib import Path

import yaml

PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"


def containerd_toml(root: Path) -> str:
    """containerd 1.6 (config version 2) for one node; its state and socket under the node's
    own ``/run/containerd``, its content and snapshots under ``root``."""
    return f"""version = 2
root = "{root}"
state = "/run/containerd/state"
oom_score = 0

[grpc]
  address = "{CONTAINERD_SOCKET}"

[ttrpc]
  address = "{CONTAINERD_SOCKET}.ttrpc"

[debug]
  level = "warn"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  disable_cgroup = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/opt/cni/bin"
  conf_dir = "/etc/cni/net.d"
  max_conf_num = 1
"""


def kubelet_config(node_ip: str, cgroup_root: str, ca_file: Path) -> str:
    """The KubeletConfiguration of one node (kubelet v1.28)."""
    cfg = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": "/" + cgroup_root,
        "cgroupsPerQOS": True,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca_file)}},
        "authorization": {"mode": "Webhook"},
        "clusterDomain": "cluster.local",
        "resolvConf": "/etc/resolv.conf",
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        # A shared lab disk must not make a node evict its pods.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": True,
        "maxPods": 110,
        "localStorageCapacityIsolation": False,
        "kubeletCgroups": "",
    }
    return yaml.safe_dump(cfg, sort_keys=False)
