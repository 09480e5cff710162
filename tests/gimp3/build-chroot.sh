#!/usr/bin/env bash
# Build (once) a Debian 13 "trixie" chroot with GIMP 3 and Python plug-in support, for the real-GIMP
# end-to-end test, and add (once) what the GUI test needs: Xvfb, xdotool, ImageMagick, openbox.
# Debian 12 ships only GIMP 2.10 without Python, hence the chroot.
# Usage: tests/gimp3/build-chroot.sh ROOT        (needs root, debootstrap is installed when missing)
# Markers: ROOT/.nst-chroot-complete (GIMP 3), ROOT/.nst-chroot-gui (the GUI packages).
set -euo pipefail
root=${1:?usage: build-chroot.sh ROOT}
gui_packages="xvfb xauth xdotool x11-apps x11-utils imagemagick openbox fonts-dejavu-core"

add_gui_packages() {  # add_gui_packages CHROOT: idempotent, apt keeps what is there
  local target=$1
  [ -f "$target/.nst-chroot-gui" ] && return 0
  echo "adding the GUI test's packages to $target: $gui_packages"
  # A private mount namespace: the binds vanish with this subshell, however it ends.
  unshare --mount --propagation private bash -euc '
    target=$1; shift
    for m in proc dev dev/pts; do mount --bind "/$m" "$target/$m"; done
    cp /etc/resolv.conf "$target/etc/resolv.conf"
    chroot "$target" apt-get update -qq
    chroot "$target" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    chroot "$target" apt-get clean' add-gui "$target" $gui_packages >"$target.gui.log" 2>&1 \
    || { tail -n 20 "$target.gui.log" >&2; return 1; }
  rm -f "$target.gui.log"
  touch "$target/.nst-chroot-gui"
}

if [ -x "$root/usr/bin/gimp-console-3.0" ] && [ -f "$root/.nst-chroot-complete" ]; then
  echo "GIMP 3 chroot already present at $root"
  if [ ! -f "$root/.nst-chroot-gui" ] && [ "$(id -u)" = 0 ]; then
    add_gui_packages "$root" || echo "could not add the GUI packages: the GUI test will skip" >&2
  fi
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "building the GIMP 3 chroot needs root (debootstrap, chroot, mount)" >&2
  exit 2
fi
if ! command -v debootstrap >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# The same Debian mirror this machine's apt uses, so it works wherever apt works.
mirror=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
         | grep -oE 'https?://[^ ]+' | head -n 1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

partial="$root.partial"
rm -rf "$partial"
mkdir -p "$partial"
cleanup() {
  for m in dev/pts dev proc; do mountpoint -q "$partial/$m" && umount "$partial/$m" || true; done
}
trap cleanup EXIT

echo "debootstrap trixie from $mirror into $partial"
debootstrap --variant=minbase trixie "$partial" "$mirror" >"$partial.log" 2>&1 || { tail -n 20 "$partial.log" >&2; exit 1; }
mount --bind /proc "$partial/proc"
mount --bind /dev "$partial/dev"
mount --bind /dev/pts "$partial/dev/pts"
cp /etc/resolv.conf "$partial/etc/resolv.conf"
chroot "$partial" apt-get update -qq
chroot "$partial" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gimp >>"$partial.log" 2>&1 \
  || { tail -n 20 "$partial.log" >&2; exit 1; }
chroot "$partial" apt-get clean
cleanup
trap - EXIT
touch "$partial/.nst-chroot-complete"
add_gui_packages "$partial" || echo "could not add the GUI packages: the GUI test will skip" >&2
rm -rf "$root"
mv "$partial" "$root"
rm -f "$partial.log"
echo "GIMP 3 chroot ready at $root ($(du -sh "$root" | cut -f1))"
