#!/usr/bin/env bash
# Build the nasrun image (containers/Dockerfile) with Charliecloud's ch-image on a Debian 12 base
# made here with debootstrap, into a directory image and a SquashFS file, cached outside the
# repository by a hash of the inputs; prints the SquashFS file's path as its last line.
#
#   bash containers/build.sh          # build when the cache lacks this hash, else reuse it
#   img=$(bash containers/build.sh | tail -n1) && ch-run "$img" -- nasrun --version
#
# Inputs hashed: containers/Dockerfile, this script, scripts/install.sh, setup.cfg,
# pyproject.toml and everything the image copies (nasrun/, scripts/, slurm/, configs/). A change
# to any of them builds a new image in a new cache directory; older ones stay until removed.
# Missing system packages (charliecloud, squashfs-tools, squashfuse, python3-lark, debootstrap)
# are installed with apt-get when we are root, like scripts/install.sh does.
#
# Environment:
#   NASRUN_IMAGE_CACHE     where images go (default ${XDG_CACHE_HOME:-~/.cache}/nasrun/images):
#                          <hash>/nasrun (directory image), <hash>/nasrun.sqfs, base-<hash>.tar
#   NASRUN_DEBIAN_MIRROR   the Debian mirror for debootstrap (default: the one apt uses here)
#   NASRUN_CACHE           the host's Horovod/mpi4py wheel cache bound into the build (as in
#                          install.sh; default ~/.cache/nasrun); NASRUN_BUILD_CACHES=0 binds none
#                          (nor pip's cache), which is a slower build (Horovod from source)
#   NASRUN_IMAGE_KEEP      how many images to keep in the cache, newest first (default 2)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${NASRUN_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nasrun/images}"
WHEELS="${NASRUN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nasrun}"
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,ca-certificates
export USER="${USER:-$(id -un)}"  # ch-run refuses to start without it
# ch-image and ch-convert are python3 scripts that import Debian's lark: not a venv's python3
export PATH="/usr/bin:$PATH"

say() { printf '[build] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
t0=$(date +%s)

# ---------------------------------------------------------------- system packages
have_cmd() { command -v "$1" >/dev/null 2>&1; }
missing=()
have_cmd ch-image && have_cmd ch-run && have_cmd ch-convert || missing+=(charliecloud)
have_cmd mksquashfs || missing+=(squashfs-tools)
have_cmd squashfuse || missing+=(squashfuse)
/usr/bin/python3 -c 'import lark' 2>/dev/null || missing+=(python3-lark)
have_cmd debootstrap || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && have_cmd apt-get; then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  else
    die "missing system packages: ${missing[*]} (install them and run again)"
  fi
fi
export PATH="$PATH:/usr/sbin:/sbin"

# ---------------------------------------------------------------- the hash of the inputs
cd "$HERE"
inputs_hash() {
  { find nasrun scripts slurm configs -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0
    printf '%s\0' containers/Dockerfile containers/build.sh setup.cfg pyproject.toml
  } | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}
HASH=$(inputs_hash)
OUT="$CACHE_ROOT/$HASH"
if [ -f "$OUT/nasrun.sqfs" ] && [ -d "$OUT/nasrun" ]; then
  say "image $HASH is cached ($(( $(date +%s) - t0 )) s)"
  echo "$OUT/nasrun.sqfs"
  exit 0
fi
mkdir -p "$CACHE_ROOT"

# ---------------------------------------------------------------- the Debian 12 base
mirror="${NASRUN_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then  # the mirror apt uses (deb822 or one-line sources)
  mirror=$(grep -hs -E '^URIs:.*/debian/?$' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | head -n1)
  [ -n "$mirror" ] || mirror=$(grep -hs -E '^deb .*/debian/? ' /etc/apt/sources.list | awk '{print $2}' | head -n1)
  mirror="${mirror:-http://deb.debian.org/debian}"
fi
base_key=$(printf '%s %s %s minbase\n' "$SUITE" "$BASE_PACKAGES" "$mirror" | sha256sum | cut -c1-16)
base_tar="$CACHE_ROOT/base-$base_key.tar"
if [ ! -f "$base_tar" ]; then
  say "debootstrap $SUITE from $mirror (about 2 minutes)"
  root=$(mktemp -d "$CACHE_ROOT/.base.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$root/fs" "$mirror" >&2 \
    || die "debootstrap failed"
  # the build's bind-mount destinations (host caches, the host's pip sources; see below)
  mkdir -p "$root/fs/mnt/nasrun-cache" "$root/fs/mnt/pip-cache" "$root/fs/mnt/host"
  # without dev/, proc/, sys/ contents: ch-image import fails copying device files
  tar -C "$root/fs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf "$base_tar.tmp" .
  mv "$base_tar.tmp" "$base_tar"
  rm -rf "$root"
  trap - EXIT
fi
base_name="nasrun-base:$base_key"
base_dir="$(ch-image gestalt storage-path)/img/${base_name//:/+}"  # where ch-image keeps it
if [ ! -d "$base_dir" ]; then
  say "ch-image import $base_tar"
  ch-image import "$base_tar" "$base_name" >&2
  [ -d "$base_dir" ] || die "ch-image stored the base somewhere else than $base_dir"
fi

# ---------------------------------------------------------------- the build
# The host's pip settings (local indexes, find-links, constraints, the CA bundle of a proxy) pass
# into the build, and the local directories they name are bound at /mnt/host/<path>, so
# install.sh's pip reaches the same indexes and finds the same wheels inside as outside (torch's
# CPU build on this machine). Declared as ARGs in the Dockerfile; plain PyPI needs none of this.
args=(--build-arg "BASE=$base_name" --build-arg PYTHON=/usr/bin/python3
      --build-arg "NASRUN_IMAGE_ID=$HASH")
bind_local() {  # bind_local PATH: bind the host's PATH at /mnt/host/PATH
  [ -e "$1" ] || return 1
  binds+=(-b "$1:/mnt/host$1")
}
binds=()
if [ "${NASRUN_BUILD_CACHES:-1}" != 0 ]; then
  mkdir -p "$WHEELS"
  binds+=(-b "$WHEELS:/mnt/nasrun-cache")
  args+=(--build-arg NASRUN_CACHE=/mnt/nasrun-cache)
  pipcache="${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pip}"
  mkdir -p "$pipcache"
  binds+=(-b "$pipcache:/mnt/pip-cache")
  args+=(--build-arg PIP_CACHE_DIR=/mnt/pip-cache)
fi
hostpip=""
for py in "$HERE/.venv/bin/python" python3; do
  if "$py" -m pip --version >/dev/null 2>&1; then hostpip="$py"; break; fi
done
if [ -n "$hostpip" ]; then
  # `pip config list` lines: global.find-links='/opt/wheels'; PIP_* variables override files
  declare -A pipconf=()
  while IFS= read -r line; do
    key="${line%%=*}"; key="${key#*.}"; value="${line#*=}"; value="${value#\'}"; value="${value%\'}"
    pipconf["$key"]="$value"
  done < <("$hostpip" -m pip config list 2>/dev/null | grep -E "^(global|install)\.")
  for key in index-url extra-index-url find-links constraint cert; do
    env="PIP_$(echo "$key" | tr 'a-z-' 'A-Z_')"
    value="${!env:-${pipconf[$key]:-}}"
    [ -n "$value" ] || continue
    guest=()
    for item in $value; do
      path="${item#file://}"
      if [ "$path" != "$item" ] || [ "${item:0:1}" = / ]; then  # a local file or directory
        top="$path"; [ "$(basename "$path")" = simple ] && top="$(dirname "$path")"  # ../../files
        [ "$key" = constraint ] || [ "$key" = cert ] && top="$(dirname "$path")"
        bind_local "$top" || continue
        g="/mnt/host$top"
        [ "$item" != "$path" ] && guest+=("file://$g${path#"$top"}") || guest+=("$g${path#"$top"}")
      else
        guest+=("$item")
      fi
    done
    [ "${#guest[@]}" -gt 0 ] && args+=(--build-arg "$env=${guest[*]}")
  done
fi

# a bind needs its destination in the image: make the ones below /mnt/host in the stored base
# (ch-image build copies it to start the new image)
for ((i = 1; i < ${#binds[@]}; i += 2)); do mkdir -p "$base_dir${binds[i]#*:}"; done

tag="nasrun:$HASH"
say "ch-image build $tag (from $base_name; binds: ${binds[*]:-none})"
tb=$(date +%s)
if ! ch-image build --force --no-cache -t "$tag" -f containers/Dockerfile "${args[@]}" "${binds[@]}" . >&2
then
  ch-image delete "$tag" >/dev/null 2>&1 || true  # what the failed build left in ch-image's storage
  die "ch-image build failed"
fi
say "built in $(( $(date +%s) - tb )) s; exporting"
tmp="$OUT.tmp"
rm -rf "$tmp" && mkdir -p "$tmp"
ch-convert -i ch-image -o dir "$tag" "$tmp/nasrun" >&2
# zstd level 3: ch-convert's gzip and zstd's default level 15 took 7-10 minutes on 2 loaded cores
mksquashfs "$tmp/nasrun" "$tmp/nasrun.sqfs" -b 65536 -noappend -all-root -comp zstd -Xcompression-level 3 \
  -no-progress -quiet >&2
# the two exports are the cache; don't keep a third copy (rm: ch-image delete took minutes)
rm -rf "$(ch-image gestalt storage-path)/img/${tag//:/+}"
rm -rf "$OUT" && mv "$tmp" "$OUT"
# keep the newest NASRUN_IMAGE_KEEP images (default 2: this one and the one before)
ls -1dt "$CACHE_ROOT"/*/ | tail -n "+$(( ${NASRUN_IMAGE_KEEP:-2} + 1 ))" | while read -r old; do
  say "removing the older image $old"; rm -rf "$old"
done
say "image $HASH: $(du -sh "$OUT/nasrun" | cut -f1) directory, $(du -h "$OUT/nasrun.sqfs" | cut -f1) SquashFS; $(( $(date +%s) - t0 )) s"
echo "$OUT/nasrun.sqfs"
