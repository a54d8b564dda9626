#!/usr/bin/env bash
# Install a self-hosted app with cutover, as its vendor hosts this script:
#
#   curl --proto '=https' --tlsv1.2 -fsSL https://vendor.example/install.sh | sudo bash -s -- --version v1.4.0
#
# The vendor sets the lines under "Set by the vendor" in their copy. The script checks the OS and
# architecture, downloads the cutover executable and checks its sha256 before running anything,
# creates the app's system account and install root, writes /etc/<app>/cutover.toml (never over
# an existing one), installs the updater unit (and the app's units, --unit), runs the first
# `update` (which verifies the app's release with Sigstore), links /usr/local/bin/<app>, and says
# what to do next. Running it again is harmless; --upgrade-cutover replaces only the executable.
# Every step is a function and `main "$@"` is the last line, so a truncated download runs nothing.
set -euo pipefail

# ---- Set by the vendor ---------------------------------------------------------------------
APP="demo"
INDEX_URL="https://releases.example.com/demo/index.json"
IDENTITY="https://github.com/acme/demo/.github/workflows/release.yml@refs/tags/v{version}"
ISSUER="https://token.actions.githubusercontent.com"
# One per architecture (cutover-linux-x64, cutover-linux-arm64) and its sha256.
CUTOVER_URL_X64="https://releases.example.com/cutover/0.1.0/cutover-linux-x64"
CUTOVER_SHA256_X64="0000000000000000000000000000000000000000000000000000000000000000"
CUTOVER_URL_ARM64="https://releases.example.com/cutover/0.1.0/cutover-linux-arm64"
CUTOVER_SHA256_ARM64="0000000000000000000000000000000000000000000000000000000000000000"
# --------------------------------------------------------------------------------------------

CUTOVER_DIR=/opt/cutover
BIN_DIR=/usr/local/bin
UNIT_DIR=/etc/systemd/system
VERSION='' ROOT='' USER_NAME='' HEALTH='' CA='' TRUSTED_ROOT='' UPGRADE_CUTOVER=0 ARCH=''
WORK=''
UNITS=()

say() { printf '%s-install: %s\n' "$APP" "$*" >&2; }
die() {
  printf '%s-install: error: %s\n' "$APP" "$1" >&2
  exit "${2:-1}"
}

usage() {
  cat >&2 <<EOF
usage: install.sh [--version vX.Y.Z] [--root DIR] [--user NAME] [--unit FILE]... [--health URL]
                  [--ca FILE] [--trusted-root FILE] [--upgrade-cutover]
  --version          the app release to install first (default: the newest)
  --root             the install root (default /opt/$APP)
  --user             the app's system account, created if missing (default $APP)
  --unit FILE        an app unit (NAME.service) to install; repeat it, in the order to restart them
  --health URL       the app's health URL, checked after every switch
  --ca FILE          CA certificate(s) of a private release server (PEM)
  --trusted-root F   a pinned Sigstore trusted_root.json (default: public-good, via TUF)
  --upgrade-cutover  replace only the cutover executable, atomically, and stop
EOF
  exit 2
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --version) VERSION=${2:-}; shift 2 || usage ;;
      --root) ROOT=${2:-}; shift 2 || usage ;;
      --user) USER_NAME=${2:-}; shift 2 || usage ;;
      --unit) UNITS+=("${2:-}"); shift 2 || usage ;;
      --health) HEALTH=${2:-}; shift 2 || usage ;;
      --ca) CA=${2:-}; shift 2 || usage ;;
      --trusted-root) TRUSTED_ROOT=${2:-}; shift 2 || usage ;;
      --upgrade-cutover) UPGRADE_CUTOVER=1; shift ;;
      -h | --help) usage ;;
      *) say "unknown argument: $1"; usage ;;
    esac
  done
  ROOT=${ROOT:-/opt/$APP}
  USER_NAME=${USER_NAME:-$APP}
  [[ $APP =~ ^[a-z0-9][a-z0-9._-]{0,63}$ ]] || die "APP at the top of this script must be a short lowercase name" 2
  [[ -z $VERSION || $VERSION =~ ^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]*)?$ ]] || die "--version must look like v1.4.0, not '$VERSION'" 2
  [[ $ROOT == /* && $ROOT != / && $ROOT != *..* ]] || die "--root must be an absolute path other than /" 2
  [[ $USER_NAME =~ ^[a-z_][a-z0-9_-]{0,31}$ && $USER_NAME != root ]] || die "--user must be an account name other than root" 2
  [[ -z $HEALTH || $HEALTH =~ ^https?:// ]] || die "--health must be an http(s):// URL" 2
  [[ $INDEX_URL == https://* ]] || die "INDEX_URL at the top of this script must be https://" 2
  local u
  for u in "${UNITS[@]}"; do
    [[ -f $u && $(basename -- "$u") =~ ^[A-Za-z0-9@._-]+\.service$ ]] || die "--unit $u is not a NAME.service file" 2
  done
  if [ -n "$CA" ] && [ ! -f "$CA" ]; then die "--ca $CA is not a file" 2; fi
  if [ -n "$TRUSTED_ROOT" ] && [ ! -f "$TRUSTED_ROOT" ]; then die "--trusted-root $TRUSTED_ROOT is not a file" 2; fi
  return 0
}

check_platform() {
  [ "$(uname -s)" = Linux ] || die "cutover runs on Linux only (this is $(uname -s))" 2
  case "$(uname -m)" in
    x86_64 | amd64) ARCH=x64 ;;
    aarch64 | arm64) ARCH=arm64 ;;
    *) die "no cutover executable for $(uname -m) (x86_64 and aarch64 are built)" 2 ;;
  esac
  [ "$(id -u)" -eq 0 ] || die "run as root: curl ... | sudo bash -s -- ..." 2
  for tool in curl sha256sum getent useradd; do
    command -v "$tool" >/dev/null || die "$tool is missing: install it and run again" 2
  done
}

# A source install (a git checkout of cutover) upgrades by hand; never overwrite one.
refuse_source_install() {
  if [ -e "$CUTOVER_DIR/.git" ]; then die "$CUTOVER_DIR holds .git/: a source install; upgrade it with git, not this script" 2; fi
  return 0
}

fetch() {
  local url=$1 out=$2
  local ca=()
  if [ -n "$CA" ]; then ca=(--cacert "$CA"); fi
  curl --proto '=https' --tlsv1.2 -fsSL --retry 2 --max-time 600 "${ca[@]}" -o "$out" "$url" || die "cannot download $url (curl exit $?)" 4
}

# Download the executable beside its final place, check its sha256, then rename it over the old
# one: a running cutover keeps its open copy; nothing runs before the digest matches.
install_cutover() {
  local url sha got
  if [ "$ARCH" = x64 ]; then url=$CUTOVER_URL_X64 sha=$CUTOVER_SHA256_X64; else url=$CUTOVER_URL_ARM64 sha=$CUTOVER_SHA256_ARM64; fi
  [[ $url == https://* ]] || die "CUTOVER_URL_${ARCH^^} at the top of this script must be https://" 2
  [[ $sha =~ ^[0-9a-f]{64}$ ]] || die "CUTOVER_SHA256_${ARCH^^} at the top of this script must be a sha256" 2
  mkdir -p "$CUTOVER_DIR"
  chmod 0755 "$CUTOVER_DIR"
  WORK=$(mktemp "$CUTOVER_DIR/.cutover.XXXXXX")
  say "downloading cutover for linux-$ARCH"
  fetch "$url" "$WORK"
  got=$(sha256sum "$WORK" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then die "cutover from $url has sha256 $got, expected $sha: not installed; tell the vendor" 3; fi
  chmod 0755 "$WORK"
  mv -f "$WORK" "$CUTOVER_DIR/cutover"
  WORK=''
  say "cutover $("$CUTOVER_DIR/cutover" --version | sed 's/^.*cutover //') installed in $CUTOVER_DIR/cutover (sha256 $got)"
}

link_bin() {
  mkdir -p "$BIN_DIR"
  ln -sfn "$CUTOVER_DIR/cutover" "$BIN_DIR/.$APP.new"
  mv -T "$BIN_DIR/.$APP.new" "$BIN_DIR/$APP"
}

create_account() {
  if getent passwd "$USER_NAME" >/dev/null; then
    say "account $USER_NAME exists"
    return 0
  fi
  useradd --system --user-group --no-create-home --home-dir "$ROOT/runtime" --shell /usr/sbin/nologin "$USER_NAME"
  say "created the system account $USER_NAME"
}

# The root and every parent root's and not writable by others (cutover refuses anything else);
# cutover makes releases/, runtime/ (owned by the account) and .cutover/ itself.
create_layout() {
  mkdir -p "$ROOT"
  chown root:root "$ROOT"
  chmod 0755 "$ROOT"
}


write_config() {
  local dir="/etc/$APP" file list=''
  file="$dir/cutover.toml"
  mkdir -p "$dir"
  if [ -e "$file" ]; then
    say "$file exists: left as it is"
    return 0
  fi
  local u
  for u in "${UNITS[@]}"; do list="$list${list:+, }\"$(basename -- "$u")\""; done
  {
    printf '# Written by the %s installer; see cutover docs/configuration.md.\n' "$APP"
    printf 'app = "%s"\nroot = "%s"\nuser = "%s"\nkeep = 3\n\n' "$APP" "$ROOT" "$USER_NAME"
    printf '[source]\nindex = "%s"\n' "$INDEX_URL"
    if [ -n "$CA" ]; then printf 'ca = "%s"\n' "$(readlink -f "$CA")"; fi
    printf '\n[trust]\nidentity = "%s"\nissuer = "%s"\n' "$IDENTITY" "$ISSUER"
    if [ -n "$TRUSTED_ROOT" ]; then printf 'trusted_root = "%s"\n' "$(readlink -f "$TRUSTED_ROOT")"; fi
    if [ -n "$list" ]; then printf '\n[service]\nunits = [%s]\n' "$list"; fi
    if [ -n "$HEALTH" ]; then printf '\n[health]\nurl = "%s"\n' "$HEALTH"; fi
  } >"$file.tmp"
  chmod 0644 "$file.tmp"
  mv -T "$file.tmp" "$file"
  say "wrote $file"
}

write_file() {
  local dest=$1
  cat >"$dest.tmp"
  chmod 0644 "$dest.tmp"
  mv -T "$dest.tmp" "$dest"
}

# The updater unit, systemd/cutover-daemon.service of cutover with this app's name and root
# (a test keeps the two in step).
install_units() {
  local u
  mkdir -p "$UNIT_DIR"
  write_file "$UNIT_DIR/$APP-updater.service" <<EOF
# cutover's own daemon, shipped by a vendor as e.g. $APP-updater.service with ExecStart naming
# the vendor's binary (/usr/local/bin/$APP). It checks for releases on the schedule in
# /etc/$APP/cutover.toml ([daemon]) and installs within daemon.auto and daemon.window.
#
# It runs as root because it restarts the app's units through systemd and swaps files under the
# install root; everything else is taken away. systemd-notify is told our PID (--pid), which
# needs root; with a dedicated User= instead, set NotifyAccess=all. The app's own units run as
# User=$APP, which cutover.toml names (user = "$APP"): CAP_CHOWN gives it a new runtime/.
[Unit]
Description=$APP release updater (cutover daemon)
Documentation=file:///usr/share/doc/cutover/systemd.md
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
ExecStart=/usr/local/bin/$APP daemon
WatchdogSec=60
Restart=on-failure
RestartSec=30
TimeoutStopSec=300
# An update in progress finishes its step or rolls back on SIGTERM; give it time.
KillMode=mixed

# Writable: the install root only. Everything else read-only or hidden.
ProtectSystem=strict
ReadWritePaths=$ROOT
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
NoNewPrivileges=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_SYS_ADMIN
UMask=0022
# V8 needs writable+executable memory: MemoryDenyWriteExecute stays off.

[Install]
WantedBy=multi-user.target
EOF
  say "installed $UNIT_DIR/$APP-updater.service"
  for u in "${UNITS[@]}"; do
    local dest
    dest="$UNIT_DIR/$(basename -- "$u")"
    cp -- "$u" "$dest.tmp"
    chmod 0644 "$dest.tmp"
    mv -T "$dest.tmp" "$dest"
    say "installed $dest"
  done
  if systemd_running; then systemctl daemon-reload; fi
}

systemd_running() { [ -d /run/systemd/system ]; }

first_update() {
  local args=(update)
  if [ -n "$VERSION" ]; then args+=(--version "$VERSION"); fi
  say "installing the first release: $APP ${args[*]}"
  "$BIN_DIR/$APP" "${args[@]}" || die "the first update failed (above); fix that and run this script again" $?
}

next_steps() {
  say "done. Next:"
  say "  $APP status                      what is installed"
  say "  sudo $APP update --dry-run       what the next update would do"
  say "  sudo systemctl enable --now $APP-updater   scheduled updates ([daemon] in /etc/$APP/cutover.toml)"
  say "  sudo $APP doctor                 check the install"
}

cleanup() {
  if [ -n "$WORK" ]; then rm -f "$WORK"; fi
}

main() {
  parse_args "$@"
  check_platform
  refuse_source_install
  trap cleanup EXIT
  install_cutover
  if [ "$UPGRADE_CUTOVER" -eq 1 ]; then
    say "cutover replaced; nothing else changed"
    return 0
  fi
  create_account
  create_layout
  write_config
  install_units
  link_bin
  first_update
  next_steps
}

main "$@"
