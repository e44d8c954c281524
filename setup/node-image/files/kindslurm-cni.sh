#!/bin/sh
# kindslurm-cni: the node image's default CNI (kindnetd is not available offline).
# Runs as a host-network DaemonSet pod (busybox + kubectl + this script):
#   1. waits until kube-proxy has synced its rules once (otherwise early pods
#      reach the Service VIP before the DNAT exists),
#   2. writes a ptp + host-local + portmap conflist for this node's
#      spec.podCIDR (ipMasq) into /etc/cni/net.d,
#   3. keeps routes to every other node's podCIDR via its InternalIP.
# SIGTERM is trapped so node shutdown is not stalled by a shell as PID 1.
set -u
CONF_DIR="${CNI_CONF_DIR:-/host/etc/cni/net.d}"
CONF="$CONF_DIR/10-kindslurm.conflist"
KUBE_PROXY_HEALTHZ="${KUBE_PROXY_HEALTHZ:-http://127.0.0.1:10256/healthz}"
KUBE_PROXY_METRICS="${KUBE_PROXY_METRICS:-http://127.0.0.1:10249/metrics}"
INTERVAL="${RESYNC_SECONDS:-5}"
NODE="${NODE_NAME:?NODE_NAME must be set}"

log() { echo "$(date -u +%H:%M:%S) kindslurm-cni: $*"; }
trap 'log "signal received, exiting"; exit 0' TERM INT
nap() { sleep "$1" & wait $!; }

# 1. kube-proxy's first sync.  healthz answers 200 even before the first sync,
#    so look at kube-proxy's sync metric; then the kubectl calls below go
#    through the Service VIP (in-cluster config), which only works once the
#    DNAT rules exist.
# (busybox-static's `wget -T` segfaults: bound waits with `timeout` instead)
n=0
while :; do
  if timeout 3 wget -q -O - "$KUBE_PROXY_METRICS" 2>/dev/null \
     | awk '/^kubeproxy_sync_proxy_rules_last_timestamp_seconds/ && $NF+0 > 0 {ok=1} END {exit !ok}'; then
    log "kube-proxy has synced its rules"; break
  fi
  n=$((n + 1))
  if [ "$n" -gt 240 ] && timeout 3 wget -q -O /dev/null "$KUBE_PROXY_HEALTHZ" 2>/dev/null; then
    log "kube-proxy metrics unavailable, healthz ok: continuing"; break
  fi
  nap 0.5
done

# 2. this node's pod CIDR
cidr=""
while [ -z "$cidr" ]; do
  cidr="$(kubectl get node "$NODE" -o jsonpath='{.spec.podCIDR}' 2>/dev/null || true)"
  [ -n "$cidr" ] || nap 1
done
mtu="$(cat /sys/class/net/eth0/mtu 2>/dev/null || echo 1500)"
conf="{
  \"cniVersion\": \"0.4.0\",
  \"name\": \"kindslurm\",
  \"plugins\": [
    {
      \"type\": \"ptp\",
      \"ipMasq\": true,
      \"mtu\": $mtu,
      \"ipam\": {
        \"type\": \"host-local\",
        \"dataDir\": \"/run/cni-ipam-state\",
        \"routes\": [ { \"dst\": \"0.0.0.0/0\" } ],
        \"ranges\": [ [ { \"subnet\": \"$cidr\" } ] ]
      }
    },
    {
      \"type\": \"portmap\",
      \"capabilities\": { \"portMappings\": true }
    }
  ]
}"
mkdir -p "$CONF_DIR"
if [ "$(cat "$CONF" 2>/dev/null)" != "$conf" ]; then
  printf '%s\n' "$conf" > "$CONF.tmp" && mv "$CONF.tmp" "$CONF"
  log "wrote $CONF for $cidr (mtu $mtu)"
fi

# 3. routes to the other nodes' pod CIDRs
while :; do
  kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {range .status.addresses[?(@.type=="InternalIP")]}{.address} {end}{"\n"}{end}' 2>/dev/null \
  | while read -r name pcidr ip _rest; do
      [ "$name" = "$NODE" ] && continue
      [ -n "$pcidr" ] && [ -n "$ip" ] || continue
      case "$ip" in *:*) continue ;; esac
      cur="$(ip route show "$pcidr" 2>/dev/null)"
      case "$cur" in
        *"via $ip "*) ;;
        *) ip route replace "$pcidr" via "$ip" && log "route $pcidr via $ip ($name)" ;;
      esac
    done
  nap "$INTERVAL"
done
