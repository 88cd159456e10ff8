#!/usr/bin/env bash
# Renames the keys of a feed-server deployment from the untagged layout (before Redis Cluster
# support) to the hash-tagged one (feed-server/README.md, "Key layout"):
#   P v:…, P vs:…, P ev, …   ->  P{shared}:v:…, P{shared}:vs:…, P{shared}:ev, …
#   P u:<user>:<name>        ->  P{u:<user>}:<name>
#   P c:…                    unchanged (cached pages)
# Run it on a single Redis while no feed-server of the deployment runs (old and new versions
# read different names); keys already tagged are left alone, so a second run does nothing.
#
#   scripts/redis-tag-keys.sh [--prefix feed:] [--dry-run] [redis-cli options: -h host -p port -a pass --tls …]
set -euo pipefail

prefix="feed:"
dry_run=false
cli=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a value}"; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    *) cli+=("$1"); shift ;;
  esac
done
case "$prefix" in
  *[{}]*) echo "redis-tag-keys: the prefix must not contain braces: $prefix" >&2; exit 2 ;;
esac
command -v redis-cli >/dev/null || { echo "redis-tag-keys: redis-cli not found (scripts/install-deps.sh)" >&2; exit 2; }

renamed=0
while IFS= read -r key; do
  rest="${key#"$prefix"}"
  case "$rest" in
    *"{"*|c:*) continue ;;
    u:*:*)
      user="${rest#u:}"; name="${user##*:}"; user="${user%:*}"
      new="${prefix}{u:${user}}:${name}" ;;
    *) new="${prefix}{shared}:${rest}" ;;
  esac
  if $dry_run; then
    printf '%s -> %s\n' "$key" "$new"
  else
    # RENAMENX: never overwrite a key the new layout already holds.
    if [[ "$(redis-cli "${cli[@]}" --no-raw RENAMENX "$key" "$new")" != "(integer) 1" ]]; then
      echo "redis-tag-keys: $new exists already; $key left as it is" >&2
      continue
    fi
  fi
  renamed=$((renamed + 1))
done < <(redis-cli "${cli[@]}" --scan --pattern "${prefix}*")
echo "redis-tag-keys: $renamed keys $($dry_run && echo "would be renamed" || echo renamed)"
