{{- define "contiv.labels" -}}
app.kubernetes.io/part-of: contiv
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "contiv.image" -}}
{{ printf "%s:%s" .repository .tag }}
{{- end -}}

{{/* The agent's YAML (contiv-agent --config): the core plugins, the enabled optional ones. */}}
{{- define "contiv.agentConfig" -}}
{{- $plugins := list "process" "service-label" "http" "health" "metrics" "logs" "kvdb" "kvscheduler" "controller" "linux" -}}
{{- if eq .Values.dataplane "vpp" }}{{ $plugins = append $plugins "vpp" }}{{ end -}}
{{- $plugins = concat $plugins (list "nodesync" "ipam" "podmanager" "ipnet") -}}
{{- $handlers := list "nodesync" "ipam" "podmanager" "ipnet" -}}
{{- if .Values.plugins.service }}{{ $plugins = append $plugins "service" }}{{ $handlers = append $handlers "service" }}{{ end -}}
{{- if .Values.plugins.policy }}{{ $plugins = append $plugins "policy" }}{{ $handlers = append $handlers "policy" }}{{ end -}}
{{- $http := dict "address" "127.0.0.1" "port" (int .Values.agent.httpPort) -}}
{{- if .Values.agent.rest.expose }}{{ $http = dict "address" "0.0.0.0" "port" (int .Values.agent.httpPort) "token_file" "/etc/contiv/rest-token/token" "tls_cert_file" "/etc/contiv/tls/rest.crt" "tls_key_file" "/etc/contiv/tls/rest.key" }}{{ end -}}
{{- $ipam := dict "pod_subnet_cidr" .Values.ipam.podSubnetCIDR "pod_subnet_one_node_prefix_len" (int .Values.ipam.podSubnetOneNodePrefixLen) "vpp_host_subnet_cidr" .Values.ipam.vppHostSubnetCIDR "vpp_host_subnet_one_node_prefix_len" (int .Values.ipam.vppHostSubnetOneNodePrefixLen) "vxlan_cidr" .Values.ipam.vxlanCIDR "service_cidr" .Values.ipam.serviceCIDR "node_interconnect_cidr" .Values.ipam.nodeInterconnectCIDR "state_file" "/var/lib/contiv/ipam-allocations.json" -}}
{{- if .Values.ipam.nodeInterface }}{{ $_ := set $ipam "node_interface" .Values.ipam.nodeInterface }}{{ end -}}
{{- if ne (.Values.ipam.podSubnetSource | default "plan") "plan" }}{{ $_ := set $ipam "pod_subnet_source" .Values.ipam.podSubnetSource }}{{ end -}}
{{- $cfg := dict "plugins" $plugins "http" $http "logs" (dict "default_level" .Values.agent.logLevel) -}}
{{- $_ := set $cfg "kvdb" (dict "backend" "etcd" "dial_timeout_s" 10.0 "allow_delayed_start" true "tls" (include "contiv.kvdbTLS" "agent" | fromYaml)) -}}
{{- $_ := set $cfg "controller" (dict "handler_order" $handlers) -}}
{{- $_ := set $cfg "linux" (dict "sysctl_dir" "/host/proc/sys") -}}
{{- $_ := set $cfg "ipam" $ipam -}}
{{- $_ := set $cfg "ipnet" (dict "dataplane" .Values.dataplane "mtu" (int .Values.ipnet.mtu) "vni" (int .Values.ipnet.vni) "nooverlay" .Values.ipnet.nooverlay) -}}
{{- $_ := set $cfg "podmanager" (dict "socket_path" "/var/run/contiv/cni.sock" "records_file" "/var/lib/contiv/pods.json") -}}
{{- toYaml (mergeOverwrite $cfg (deepCopy .Values.agent.extraConfig)) -}}
{{- end -}}

{{/* etcd endpoints of KSR: the given ones, or the member beside it (same node). */}}
{{- define "contiv.ksrEtcdEndpoints" -}}
{{- if .Values.etcd.endpoints }}{{ join "," .Values.etcd.endpoints }}{{ else }}{{ printf "$(HOST_IP):%v" .Values.etcd.clientPort }}{{ end -}}
{{- end -}}

{{/* The Secrets of contiv-certs' files: the pods' (never the CA key) and root's (etcd's pod only). */}}
{{- define "contiv.tlsSecret" -}}
{{- .Values.tls.existingSecret | default "contiv-tls" -}}
{{- end -}}
{{- define "contiv.rootSecret" -}}
{{- if and .Values.tls.existingSecret (not .Values.tls.existingRootSecret) -}}
{{- fail "tls.existingSecret needs tls.existingRootSecret (ca.crt, root.crt, root.key): etcd's users and roles are set up as root" -}}
{{- end -}}
{{- .Values.tls.existingRootSecret | default "contiv-etcd-root" -}}
{{- end -}}

{{/* The kvdb section's mutual TLS: contiv-certs' files of client NAME where the pods mount them. */}}
{{- define "contiv.kvdbTLS" -}}
{{- dict "ca_file" "/etc/contiv/tls/ca.crt" "cert_file" (printf "/etc/contiv/tls/%s.crt" .) "key_file" (printf "/etc/contiv/tls/%s.key" .) | toYaml -}}
{{- end -}}
