#!/usr/bin/env bash
# Run Python batch code in a real, headless GIMP 3 (gimp-console-3.0 with python-fu-eval).
#
# Usage: tests/gimp3/gimp3-batch.sh [--root ROOT] --home DIR [--bind PATH]... [--env NAME=VALUE]...
#                                   BATCH_FILE
#   --root ROOT   a Debian 13 chroot with GIMP 3 (tests/gimp3/build-chroot.sh); without it, or with
#                 "/", the system's gimp-console-3.0 runs
#   --home DIR    GIMP's HOME (its profile, with the plug-ins, is DIR/.config/GIMP/3.0)
#   --bind PATH   make a host folder visible in the chroot at the same path (the engine's venv and
#                 its base interpreter, the checkout, the test's folder); repeatable
#   --env N=V     an environment variable for GIMP (it starts from an empty environment); repeatable
# BATCH_FILE runs inside GIMP with Gimp, Gio, GLib, GObject, Gegl already imported.
#
# The chroot needs /proc, /dev, /dev/pts and the --bind folders mounted; they are unmounted in
# reverse order on every way out (EXIT trap). The script also re-runs itself in a private mount
# namespace when it can (unshare), so that even a killed run leaves no mount behind on the host.
# Exit status: GIMP's (64 when the batch code raised), 124 on timeout (NST_GIMP_TIMEOUT, 600 s).
set -euo pipefail

if [ -z "${NST_GIMP_IN_NAMESPACE:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null \
   && unshare --mount --propagation private true 2>/dev/null; then
  export NST_GIMP_IN_NAMESPACE=1
  exec unshare --mount --propagation private "$0" "$@"
fi

root=/
home=
batch=
binds=()
envs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$2; shift 2 ;;
    --home) home=$2; shift 2 ;;
    --bind) binds+=("$2"); shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    -*) echo "gimp3-batch.sh: unknown option $1" >&2; exit 2 ;;
    *) batch=$1; shift ;;
  esac
done
[ -n "$home" ] && [ -n "$batch" ] || { sed -n '2,15p' "$0" >&2; exit 2; }
root=${root%/}
timeout_s=${NST_GIMP_TIMEOUT:-600}

mounted=()
cleanup() {
  local i
  for ((i=${#mounted[@]}-1; i>=0; i--)); do
    umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bind_into_root() {  # bind_into_root HOST_PATH [TARGET_PATH]
  local source=$1 target=$root${2:-$1}
  mkdir -p "$target"
  mount --bind "$source" "$target"
  mounted+=("$target")
}

if [ -n "$root" ]; then
  [ -x "$root/usr/bin/gimp-console-3.0" ] || { echo "no gimp-console-3.0 in $root" >&2; exit 2; }
  bind_into_root /proc
  bind_into_root /dev
  bind_into_root /dev/pts
  # Parents before children, so that a nested folder is not hidden by its parent's mount.
  while IFS= read -r path; do
    [ -n "$path" ] && bind_into_root "$path"
  done < <(printf '%s\n' "${binds[@]+"${binds[@]}"}" | awk 'NF' | sort -u | awk '{ print length, $0 }' \
           | sort -n | cut -d' ' -f2-)
  launcher=(chroot "$root")
else
  command -v gimp-console-3.0 >/dev/null || { echo "no gimp-console-3.0 on PATH" >&2; exit 2; }
  launcher=()
fi

mkdir -p "$home"
set +e
timeout --kill-after=10 "$timeout_s" "${launcher[@]+"${launcher[@]}"}" \
  env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$home" LANG=C.UTF-8 "${envs[@]+"${envs[@]}"}" \
  gimp-console-3.0 -i --quit --batch-interpreter=python-fu-eval \
  -b "exec(open('$batch').read())"
status=$?
set -e
exit $status
