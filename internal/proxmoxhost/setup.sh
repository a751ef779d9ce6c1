#!/bin/bash
# Turns a fresh Debian 12 into the Proxmox VE host of a rawkode-cloud
# cluster. cloud-init runs "stage1" on first boot; stage1 installs the
# Proxmox kernel and reboots, and a systemd unit runs "stage2" once after
# that. Every step can run again without harm, and stage2 runs at every boot
# until it has succeeded once. Settings come from /etc/rawkode-cloud/host.env.
set -euo pipefail

# shellcheck source=/dev/null
. /etc/rawkode-cloud/host.env

export DEBIAN_FRONTEND=noninteractive
readonly STATE=/var/lib/rawkode-cloud
# The Proxmox release key's SHA-512, as published in Proxmox's "Install
# Proxmox VE on Debian 12 Bookworm" guide: apt trusts nothing else.
readonly PVE_KEY_URL=https://enterprise.proxmox.com/debian/proxmox-release-bookworm.gpg
readonly PVE_KEY_SHA512=7da6fe34168adc6e479327ba517796d4702fa2f8b4f0a9833f5ea6e6b48f6507a6da403a274fe201595edc86a84463d50383d07f64bdde2e3658108db7d6dc87
readonly PVE_KEY=/usr/share/keyrings/proxmox-release-bookworm.gpg

log() { echo "rawkode-cloud host setup: $*" | tee /dev/kmsg >&2 || true; }

apt_get() {
	local n
	for n in 1 2 3 4 5; do
		if apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"; then
			return 0
		fi
		log "apt-get $1 failed (attempt $n), retrying"
		sleep $((n * 10))
	done
	return 1
}

# uplink, gateway and address_of read what the install's network setup
# (DHCP) gave the server.
uplink() {
	ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1); exit}'
}

gateway() {
	ip -4 route show default | awk '{print $3; exit}'
}

address_of() {
	ip -4 -o addr show dev "$1" scope global | awk '{print $4; exit}'
}

# Proxmox wants the node name to resolve to its public address, not to
# Debian's 127.0.1.1 (pve-cluster refuses to start otherwise).
resolve_hostname() {
	local addr="$1"
	sed -i "/[[:space:]]${HOST_NAME}\$/d; /^127\.0\.1\.1[[:space:]]/d" /etc/hosts
	echo "${addr%/*} ${HOST_FQDN} ${HOST_NAME}" >>/etc/hosts
	hostnamectl set-hostname "$HOST_NAME"
}

stage1() {
	mkdir -p "$STATE"
	local dev addr
	dev=$(uplink)
	addr=$(address_of "$dev")
	resolve_hostname "$addr"
	log "adding the Proxmox VE repository"
	curl -fsSL --retry 5 -o "$PVE_KEY.tmp" "$PVE_KEY_URL"
	echo "$PVE_KEY_SHA512  $PVE_KEY.tmp" | sha512sum -c --quiet -
	mv "$PVE_KEY.tmp" "$PVE_KEY"
	echo "deb [arch=amd64 signed-by=$PVE_KEY] http://download.proxmox.com/debian/pve bookworm pve-no-subscription" \
		>/etc/apt/sources.list.d/pve-install-repo.list
	apt_get update
	apt_get full-upgrade
	log "installing the Proxmox kernel"
	apt_get install proxmox-default-kernel
	systemctl enable rawkode-pve-stage2.service
	log "rebooting into the Proxmox kernel"
	systemctl reboot
}

# bridge_uplink moves the public address from the NIC onto vmbr0, the
# bridge Proxmox expects, keeping the address and gateway DHCP gave.
bridge_uplink() {
	local dev addr gw
	dev=$(uplink)
	if [ "$dev" = vmbr0 ]; then
		return 0
	fi
	addr=$(address_of "$dev")
	gw=$(gateway)
	cat >/etc/network/interfaces <<-IFACES
		auto lo
		iface lo inet loopback

		iface $dev inet manual

		auto vmbr0
		iface vmbr0 inet static
		    address $addr
		    gateway $gw
		    bridge-ports $dev
		    bridge-stp off
		    bridge-fd 0

		source /etc/network/interfaces.d/*
	IFACES
	ifreload -a
}

zfs_pool() {
	if ! zpool list "$ZFS_POOL" >/dev/null 2>&1; then
		log "creating ZFS pool $ZFS_POOL on $ZFS_DEVICES"
		# shellcheck disable=SC2086 # one word per device, by design
		zpool create -f -o ashift=12 -O compression=lz4 -O atime=off "$ZFS_POOL" $ZFS_VDEV $ZFS_DEVICES
	fi
	local ds
	for ds in $ZFS_DATASETS; do
		zfs list "$ZFS_POOL/$ds" >/dev/null 2>&1 || zfs create "$ZFS_POOL/$ds"
	done
	if ! pvesm status --storage "$ZFS_POOL" >/dev/null 2>&1; then
		pvesm add zfspool "$ZFS_POOL" --pool "$ZFS_POOL" --content images,rootdir --sparse 1
	fi
}

stage2() {
	log "installing Proxmox VE"
	echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
	echo "postfix postfix/mailname string $HOST_FQDN" | debconf-set-selections
	apt_get install proxmox-ve postfix open-iscsi chrony targetcli-fb
	apt_get remove linux-image-amd64 'linux-image-6.1*' os-prober
	update-grub
	# The enterprise repository needs a subscription; the installer adds it.
	rm -f /etc/apt/sources.list.d/pve-enterprise.list /etc/apt/sources.list.d/pve-enterprise.sources

	bridge_uplink
	sysctl --system >/dev/null
	systemctl enable --now rawkode-host-nat.service
	systemctl enable --now rawkode-host-operator-forwards.service
	zfs_pool
	pvesm set local --content "$LOCAL_CONTENT"
	# The API certificate the CLI made (and pins) replaces the self-signed one.
	if [ -s /etc/rawkode-cloud/pveproxy-ssl.key ]; then
		cp /etc/rawkode-cloud/pveproxy-ssl.pem /etc/pve/local/pveproxy-ssl.pem
		cp /etc/rawkode-cloud/pveproxy-ssl.key /etc/pve/local/pveproxy-ssl.key
		systemctl restart pveproxy
	fi
	# democratic-csi's zfs-generic-iscsi drives this target from the cluster.
	systemctl enable --now rtslib-fb-targetctl
	teleport_agent
	systemctl disable rawkode-pve-stage2.service
	touch "$STATE/ready"
	log "ready: Proxmox VE answers on port 8006"
}

# teleport_agent installs Teleport and starts the host's SSH service when
# the user data brought its config. It joins the Teleport VM once the CLI
# has created its join token there; until then systemd restarts it.
teleport_agent() {
	if [ -z "${TELEPORT_APT:-}" ] || [ ! -s /etc/teleport.yaml ]; then
		return 0
	fi
	log "installing the Teleport SSH service"
	install -d -m 0755 /etc/apt/keyrings
	curl -fsSL --retry 5 -o /etc/apt/keyrings/teleport.asc "$TELEPORT_APT_KEY"
	echo "deb [signed-by=/etc/apt/keyrings/teleport.asc] $TELEPORT_APT" >/etc/apt/sources.list.d/teleport.list
	apt_get update
	apt_get install teleport
	systemctl enable --now teleport
}

# ensure appends an iptables rule unless it is there.
ensure() {
	local table="$1" chain="$2"
	shift 2
	iptables -t "$table" -C "$chain" "$@" 2>/dev/null || iptables -t "$table" -A "$chain" "$@"
}

# nat keeps the internal network's NAT and the public port forwards in
# place; run at every boot by rawkode-host-nat.service.
nat() {
	local fwd port to
	ensure nat POSTROUTING -s "$INTERNAL_CIDR" -o vmbr0 -j MASQUERADE
	for fwd in $PORT_FORWARDS; do
		port=${fwd%%=*}
		to=${fwd#*=}
		ensure nat PREROUTING -i vmbr0 -p tcp --dport "$port" -j DNAT --to-destination "$to:$port"
		ensure filter FORWARD -i vmbr0 -o vmbr1 -p tcp -d "$to" --dport "$port" -j ACCEPT
	done
}

# operator_forwards adds the forwards that only the operator may use:
# each DNAT matches sources in the kernel ipset pve-firewall makes of the
# datacenter IP set the CLI fills through the API (empty outside a run),
# so opening and closing them needs no shell on the host. A rule cannot
# name a set that does not exist yet, so this waits for pve-firewall to
# make it; run at every boot by rawkode-host-operator-forwards.service.
operator_forwards() {
	local fwd port to
	if [ -z "$OPERATOR_FORWARDS" ]; then
		return 0
	fi
	until ipset list -n "$OPERATOR_IPSET" >/dev/null 2>&1; do
		sleep 5
	done
	for fwd in $OPERATOR_FORWARDS; do
		port=${fwd%%=*}
		to=${fwd#*=}
		ensure nat PREROUTING -i vmbr0 -p tcp --dport "$port" -m set --match-set "$OPERATOR_IPSET" src \
			-j DNAT --to-destination "$to"
		ensure filter FORWARD -i vmbr0 -o vmbr1 -p tcp -d "${to%:*}" --dport "${to##*:}" \
			-m set --match-set "$OPERATOR_IPSET" src -j ACCEPT
	done
	log "operator-only forwards in place (sources in $OPERATOR_IPSET)"
}

case "${1:-}" in
stage1) stage1 ;;
stage2) stage2 ;;
nat) nat ;;
operator-forwards) operator_forwards ;;
*)
	echo "usage: $0 stage1|stage2|nat|operator-forwards" >&2
	exit 2
	;;
esac
