#!/usr/bin/env bash
# Builds the feed-server and feedroll-operator container images offline with buildah, from
# binaries cargo already built, and writes them as OCI archives. No base image is pulled: each
# image starts FROM scratch and gets the binary, exactly the shared libraries `ldd` says it links
# (plus the dynamic loader), /etc/passwd and /etc/group with the `nonroot` user (65532), the CA
# bundle and an empty /tmp. The image configuration mirrors feed-server/Containerfile and
# operator/Containerfile (the multi-stage recipe for CI); scripts/tests/test_build_images.py keeps
# the two in step. `make images` runs this on the release binaries.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/build-images.sh [--profile release|debug] [--out DIR]

Builds the feed-server and feedroll-operator images offline with buildah (vfs storage in a
temporary directory under the cargo target directory, chroot isolation, nothing pulled) from
the binaries in $CARGO_TARGET_DIR/<profile>/ (default target/<profile>/), and writes

  DIR/feed-server.oci.tar
  DIR/feedroll-operator.oci.tar

tagged with the chart's appVersion (charts/feedroll/Chart.yaml), which is also their
org.opencontainers.image.ref.name annotation.

Options:
  --profile release|debug  which cargo build to package (default release; build it first:
                           cargo build --release --locked -p feed-server -p feedroll-operator)
  --out DIR                where the archives go (default <target dir>/images)
  -h, --help               this text

Environment: BUILDAH (the buildah command, default buildah), CARGO_TARGET_DIR,
SOURCE_DATE_EPOCH (image creation time, for reproducible digests).
EOF
}

die() {
  echo "build-images: ERROR: $*" >&2
  exit 1
}

profile=release
out=""
while (($#)); do
  case "$1" in
    --profile)
      [ $# -ge 2 ] || { usage >&2; die "--profile needs a value: release or debug"; }
      profile=$2
      shift 2
      ;;
    --profile=*) profile=${1#*=}; shift ;;
    --out)
      [ $# -ge 2 ] || { usage >&2; die "--out needs a directory"; }
      out=$2
      shift 2
      ;;
    --out=*) out=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
case "$profile" in
  release | debug) ;;
  *) die "--profile must be release or debug, not '$profile'" ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=${out:-$target_dir/images}
[[ $out != *:* ]] || die "the output directory '$out' must not contain ':' (buildah reads it as part of the image reference)"
chart=$root/charts/feedroll/Chart.yaml
ca_bundle=/etc/ssl/certs/ca-certificates.crt
buildah_cmd=${BUILDAH:-buildah}

# ---------------------------------------------------------------- preconditions, nothing written yet

command -v "$buildah_cmd" >/dev/null 2>&1 ||
  die "buildah not found ('$buildah_cmd'); run scripts/install-deps.sh (Debian package buildah)"
command -v ldd >/dev/null 2>&1 || die "ldd not found (Debian package libc-bin)"
[ -r "$ca_bundle" ] || die "$ca_bundle missing (Debian package ca-certificates)"

# appVersion: "0.1.0" (quotes optional) -> 0.1.0
version=$(sed -n -E 's/^appVersion:[[:space:]]*"?([^"[:space:]]*)"?[[:space:]]*$/\1/p' "$chart")
[ -n "$version" ] || die "no appVersion in $chart"
[[ $version =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] ||
  die "appVersion '$version' in $chart is not a valid image tag"
home=$(sed -n -E 's/^home:[[:space:]]*"?([^"[:space:]]*)"?[[:space:]]*$/\1/p' "$chart")
license=$(sed -n -E 's/^license[[:space:]]*=[[:space:]]*"([^"]*)".*/\1/p' "$root/Cargo.toml" | head -n1)
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || true)

# Image (= binary) names, their crate directories and their own KEY=VALUE environment.
images=(feed-server feedroll-operator)
declare -A crate_dir=([feed-server]=feed-server [feedroll-operator]=operator)
declare -A image_env=([feed-server]="FEED_LISTEN=0.0.0.0:8080" [feedroll-operator]="")

for name in "${images[@]}"; do
  bin=$target_dir/$profile/$name
  [ -x "$bin" ] || die "binary $bin missing; build it first: cargo build$([ "$profile" = release ] && echo " --release") --locked -p ${crate_dir[$name]}"
  if ldd "$bin" 2>/dev/null | grep -q 'not found'; then
    die "$bin links libraries this machine lacks: $(ldd "$bin" | grep 'not found' | tr -s ' \t' ' ')"
  fi
done

# ---------------------------------------------------------------- private buildah storage

mkdir -p "$out"
work=$(mktemp -d "$target_dir/.build-images.XXXXXX")
buildah=("$buildah_cmd" --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
export BUILDAH_ISOLATION=chroot # no RUN step here; should one come, no OCI runtime is needed
containers=()
cleanup() {
  if ((${#containers[@]})); then
    "${buildah[@]}" rm "${containers[@]}" >/dev/null 2>&1 || true
  fi
  rm -rf "$work" "$out"/.*.oci.tar.partial 2>/dev/null || true
}
trap cleanup EXIT

# The files every image shares: users, name service switch, CA bundle, /tmp.
common=$work/common
install -d -m 0755 "$common/etc/ssl/certs"
install -d -m 1777 "$common/tmp"
install -d -m 0755 "$common/home"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$common/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$common/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$common/etc/nsswitch.conf"
chmod 0644 "$common"/etc/{passwd,group,nsswitch.conf}
install -m 0644 "$ca_bundle" "$common/etc/ssl/certs/ca-certificates.crt"
# /home/nonroot, owned by the user: copied on its own with --chown (everything else is root's).
homes=$work/homes
install -d -m 0700 "$homes/nonroot"

# Copies $1's binary and every shared object ldd lists (loader included) under the root $2.
stage_binary() {
  local bin=$1 dest=$2 name=$3 lib
  install -D -m 0755 "$bin" "$dest/usr/local/bin/$name"
  # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)"
  while read -r lib; do
    install -D -m 0755 "$(readlink -f "$lib")" "$dest$lib"
  done < <(ldd "$bin" | sed -n -E 's#.*=> (/[^ ]+) \(0x[0-9a-f]+\)$#\1#p; s#^[[:space:]]*(/[^ ]+) \(0x[0-9a-f]+\)$#\1#p')
}

build_image() {
  local name=$1 dir=${crate_dir[$1]} stage=$work/stage-$1 ctr description archive
  description=$(sed -n -E 's/^description[[:space:]]*=[[:space:]]*"(.*)"[[:space:]]*$/\1/p' "$root/$dir/Cargo.toml" | head -n1)
  stage_binary "$target_dir/$profile/$name" "$stage" "$name"

  ctr=$("${buildah[@]}" from --quiet scratch)
  containers+=("$ctr")
  "${buildah[@]}" copy --quiet "$ctr" "$common" / >/dev/null
  "${buildah[@]}" copy --quiet "$ctr" "$stage" / >/dev/null
  "${buildah[@]}" copy --quiet --chown 65532:65532 "$ctr" "$homes" /home >/dev/null

  local config=(
    --user 65532:65532
    --entrypoint "[\"/usr/local/bin/$name\"]"
    --workingdir /home/nonroot
    --port 8080/tcp
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
    --created-by "scripts/build-images.sh: $name from the $profile binary, its shared libraries, users, CA bundle"
    --label "org.opencontainers.image.title=$name"
    --label "org.opencontainers.image.description=$description"
    --label "org.opencontainers.image.version=$version"
    --label "org.opencontainers.image.source=$home"
    --label "org.opencontainers.image.url=$home"
    --label "org.opencontainers.image.licenses=$license"
    --label "org.opencontainers.image.vendor=Feedroll"
  )
  [ -z "${image_env[$name]}" ] || config+=(--env "${image_env[$name]}")
  [ -z "$revision" ] || config+=(--label "org.opencontainers.image.revision=$revision")
  "${buildah[@]}" config "${config[@]}" "$ctr"

  local commit=(commit --quiet --format oci --identity-label=false --disable-compression=false)
  [ -z "${SOURCE_DATE_EPOCH:-}" ] || commit+=(--timestamp "$SOURCE_DATE_EPOCH")
  "${buildah[@]}" "${commit[@]}" "$ctr" "oci-archive:$out/.$name.oci.tar.partial:$version" >/dev/null
}

# Each archive is written beside its final name and all are renamed at the end: a failed build
# leaves the previous archives as they were and no half-written one.
for name in "${images[@]}"; do
  build_image "$name"
done
for name in "${images[@]}"; do
  archive=$out/$name.oci.tar
  mv -f "$out/.$name.oci.tar.partial" "$archive"
  echo "build-images: $archive ($name:$version, $(du -h "$archive" | cut -f1), $profile binary)"
done
