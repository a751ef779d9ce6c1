#!/bin/bash
# rawkode-cloud talos-pivot: replaces the Ubuntu that Scaleway installed with
# Talos Linux, by writing the Image Factory's raw disk image over the install
# disk and rebooting into it.
#
# The PIVOT_* environment variables below are test seams, used only by the
# rawkode-cloud test suite to run this script against a file-backed "disk" and
# a local image server. Nothing sets them on a real server.
set -Eeuo pipefail

IMAGE_URL="${PIVOT_IMAGE_URL:-@IMAGE_URL@}"
DISK="${PIVOT_DISK:-@INSTALL_DISK@}"
ATTEMPTS=@ATTEMPTS@
RETRY_DELAY="${PIVOT_RETRY_DELAY:-10}"
WORKDIR="${PIVOT_WORKDIR:-/run/rawkode-cloud}"
CONSOLE="${PIVOT_CONSOLE:-/dev/console}"
REBOOT_CMD="${PIVOT_REBOOT_CMD:-}"
SKIP_MDADM="${PIVOT_SKIP_MDADM:-0}"
SKIP_SWAPOFF="${PIVOT_SKIP_SWAPOFF:-0}"
IMAGE="${WORKDIR}/talos.raw.zst"
# The machine config volume (an ISO 9660 image labelled metal-iso), written
# by cloud-init next to this script when the config is delivered with the
# install; empty when the node is configured in maintenance mode instead.
CONFIG_VOLUME="${PIVOT_CONFIG_VOLUME:-@CONFIG_VOLUME@}"
CONFIG_PARTITION=@CONFIG_PARTITION@

log() {
	local msg="talos-pivot: $*"
	echo "${msg}" >&2
	# The serial console is where an operator looks when the node never comes
	# back; syslog is where cloud-init users look. Neither may break the pivot.
	{ echo "${msg}" >"${CONSOLE}"; } 2>/dev/null || true
	logger -t talos-pivot -- "$*" 2>/dev/null || true
}

die() {
	log "FAILED: $*"
	exit 1
}

on_error() {
	local rc=$? line=$1
	log "FAILED: command at line ${line} exited with status ${rc}"
	exit "${rc}"
}

# pick_disk prints the first whole disk that is neither removable nor
# read-only, in byte order of its device path (so /dev/nvme0n1 comes before
# /dev/nvme1n1 and /dev/sda). RAM-backed and virtual devices are skipped.
pick_disk() {
	lsblk -dnpo NAME,TYPE,RM,RO,SIZE -b |
		awk '$2 == "disk" && $3 == "0" && $4 == "0" && $5 > 0 && $1 !~ /^\/dev\/(zram|ram|loop|nbd|fd|sr)/ { print $1 }' |
		LC_ALL=C sort | sed -n 1p
}

check_disk() {
	if [[ -z "${DISK}" ]]; then
		DISK="$(pick_disk)"
		[[ -n "${DISK}" ]] || die "no non-removable disk found"
		log "no install disk configured, picked ${DISK}"
	fi
	[[ "${DISK}" == /* ]] || die "install disk ${DISK} is not an absolute path"
	if [[ -b "${DISK}" ]]; then
		[[ "$(lsblk -dno TYPE "${DISK}")" == "disk" ]] || die "${DISK} is not a whole disk"
	elif [[ -n "${PIVOT_DISK:-}" && -f "${DISK}" ]]; then
		log "writing to regular file ${DISK} (test mode)"
	else
		die "install disk ${DISK} is not a block device"
	fi
}

# ensure_tool installs a missing tool from the Ubuntu archive: the cloud
# images ship curl and zstd, but a minimal install might not.
ensure_tool() {
	command -v "$1" >/dev/null 2>&1 && return 0
	log "installing $1"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q "$1" >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$1" >/dev/null 2>&1; } ||
		die "$1 is not installed and could not be installed"
}

download() {
	local attempt
	mkdir -p "${WORKDIR}"
	for ((attempt = 1; attempt <= ATTEMPTS; attempt++)); do
		log "downloading ${IMAGE_URL} (attempt ${attempt}/${ATTEMPTS})"
		if curl -fsSL --connect-timeout 30 --max-time 1800 -o "${IMAGE}.part" "${IMAGE_URL}" &&
			zstd -q -t "${IMAGE}.part"; then
			mv "${IMAGE}.part" "${IMAGE}"
			return 0
		fi
		rm -f "${IMAGE}.part"
		if ((attempt < ATTEMPTS)); then
			sleep "$((RETRY_DELAY * attempt))"
		fi
	done
	die "could not download a valid image from ${IMAGE_URL} after ${ATTEMPTS} attempts"
}

# members_on_disk prints the md member devices (e.g. /dev/nvme0n1p2) of array
# $1 that live on the install disk.
members_on_disk() {
	local array=$1 dev
	for dev in /sys/block/"$(basename "${array}")"/slaves/*; do
		[[ -e "${dev}" ]] || continue
		dev="/dev/$(basename "${dev}")"
		if [[ "$(lsblk -dno PKNAME "${dev}" 2>/dev/null)" == "$(basename "${DISK}")" || "${dev}" == "${DISK}" ]]; then
			echo "${dev}"
		fi
	done
}

# stop_raid releases the install disk from the md RAID1 arrays the Scaleway
# install builds on two-disk offers. Only arrays with a member on the install
# disk are touched: any other array belongs to disks this pivot leaves alone.
# An array that holds the running root filesystem cannot be stopped; its
# members on the install disk are failed and removed instead, so the degraded
# array keeps running from the other disk and never writes over the new image.
stop_raid() {
	local array member members
	if [[ "${SKIP_MDADM}" == "1" ]]; then
		log "skipping md RAID handling (test mode)"
		return 0
	fi
	if ! command -v mdadm >/dev/null 2>&1; then
		log "mdadm not installed, assuming no md RAID"
		return 0
	fi
	for array in /dev/md[0-9]*; do
		[[ -b "${array}" ]] || continue
		members="$(members_on_disk "${array}")"
		if [[ -z "${members}" ]]; then
			log "leaving ${array} alone: no member on ${DISK}"
			continue
		fi
		if mdadm --stop "${array}" >/dev/null 2>&1; then
			log "stopped ${array}"
		else
			for member in ${members}; do
				log "removing ${member} from busy array ${array}"
				mdadm --manage "${array}" --fail "${member}" >/dev/null 2>&1 || true
				mdadm --manage "${array}" --remove "${member}" >/dev/null || die "could not remove ${member} from ${array}"
			done
		fi
	done
	clear_superblocks
}

# clear_superblocks erases the md superblock of every member on the install
# disk (the disk itself and each partition), including members of arrays that
# were never assembled: a superblock that outlives the pivot in a stretch the
# image does not cover makes the old array's remains look like a RAID member
# to whatever scans the disk later.
clear_superblocks() {
	local dev devs="${DISK}"
	if [[ -b "${DISK}" ]]; then
		# Partitions only: lsblk also lists the arrays a partition still holds.
		devs+=" $(lsblk -lnpo NAME,TYPE "${DISK}" | awk '$2 == "part" { print $1 }')"
	fi
	for dev in ${devs}; do
		mdadm --examine "${dev}" >/dev/null 2>&1 || continue
		if mdadm --zero-superblock "${dev}" >/dev/null 2>&1; then
			log "cleared the md superblock on ${dev}"
		else
			log "could not clear the md superblock on ${dev}; wiping its signatures instead"
		fi
	done
}

# release_swap stops swapping before the disk is overwritten: the Scaleway
# layout has a raw swap partition on the install disk, and the kernel would
# keep writing pages into what becomes the Talos image.
release_swap() {
	if [[ "${SKIP_SWAPOFF:-0}" == "1" ]]; then
		log "skipping swapoff (test mode)"
		return 0
	fi
	log "turning swap off"
	swapoff -a || die "swapoff -a failed: swap stays active on the disk about to be overwritten"
}

wipe() {
	local part
	if [[ -b "${DISK}" ]]; then
		for part in $(lsblk -lnpo NAME,TYPE "${DISK}" | awk '$2 == "part" { print $1 }'); do
			log "wiping signatures on ${part}"
			wipefs -a -f "${part}" >/dev/null
		done
	fi
	log "wiping signatures on ${DISK}"
	wipefs -a -f "${DISK}" >/dev/null
}

write_image() {
	log "writing Talos to ${DISK}"
	zstd -dc "${IMAGE}" | dd of="${DISK}" bs=4M iflag=fullblock conv=fsync status=none
	sync
	if [[ -b "${DISK}" ]]; then
		blockdev --rereadpt "${DISK}" 2>/dev/null || true
	fi
	log "Talos written to ${DISK}"
}

# write_config_volume puts the machine config where Talos looks for it at
# first boot: with talos.config=metal-iso on its kernel command line, Talos
# mounts the volume whose filesystem or partition label is metal-iso and reads
# config.yaml from it, before it would ever enter maintenance mode. The volume
# is a small partition at the end of the install disk, with a fixed number so
# that rawkode-cloud can wipe and drop it once Talos has stored its config.
write_config_volume() {
	[[ -n "${CONFIG_VOLUME}" ]] || return 0
	[[ -s "${CONFIG_VOLUME}" ]] || die "config volume ${CONFIG_VOLUME} is missing"
	local total size start
	if [[ -b "${DISK}" ]]; then
		total="$(blockdev --getsz "${DISK}")"
	else
		total="$(($(stat -c %s "${DISK}") / 512))"
	fi
	# 2 MiB, aligned to 1 MiB, clear of the backup GPT in the last sectors.
	size=4096
	start="$(((total - 34 - size) / 2048 * 2048))"
	# The image's GPT describes a disk as small as the image: its backup
	# header must move to the real end before a partition can go there.
	sfdisk --relocate gpt-bk-std "${DISK}" >/dev/null 2>&1 || true
	# The device prefix is how sfdisk is told the partition's number.
	local part="${DISK}${CONFIG_PARTITION}"
	if [[ "${DISK}" =~ [0-9]$ ]]; then
		part="${DISK}p${CONFIG_PARTITION}"
	fi
	echo "${part} : start=${start}, size=${size}, name=metal-iso" |
		sfdisk --append --no-reread --no-tell-kernel -q "${DISK}" >/dev/null ||
		die "could not create the config partition on ${DISK}"
	dd if="${CONFIG_VOLUME}" of="${DISK}" bs=512 seek="${start}" conv=notrunc,fsync status=none
	rm -f "${CONFIG_VOLUME}"
	sync
	log "machine config written to partition ${CONFIG_PARTITION} (metal-iso) of ${DISK}"
}

reboot_now() {
	if [[ -n "${REBOOT_CMD}" ]]; then
		log "rebooting with test command"
		bash -c "${REBOOT_CMD}"
		return
	fi
	log "rebooting into Talos"
	# The root filesystem is gone, so an orderly shutdown cannot work.
	reboot --force --force 2>/dev/null || true
	sleep 15
	log "reboot did not happen, using sysrq"
	echo 1 >/proc/sys/kernel/sysrq
	echo b >/proc/sysrq-trigger
}

main() {
	trap 'on_error ${LINENO}' ERR
	ensure_tool curl
	ensure_tool zstd
	check_disk
	# The image is downloaded and verified before the disk is touched, so a
	# failed download leaves a working Ubuntu behind.
	download
	release_swap
	stop_raid
	wipe
	write_image
	write_config_volume
	reboot_now
}

# main runs only after bash has read the whole file, so overwriting the disk
# the script came from cannot change what runs.
main "$@"
