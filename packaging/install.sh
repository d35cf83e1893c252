#!/bin/sh
# Installs cairn from this unpacked release tarball. Offline: it only copies files from the
# directory it is in and never downloads anything.
#
#   ./install.sh [--prefix DIR] [--unit-dir DIR] [--state-dir DIR] [--no-user] [--no-systemctl]
#   ./install.sh --uninstall [--purge] [same options as at install]
#
#   --prefix DIR     where to install (default /usr/local):
#                      DIR/lib/cairn/bin/{cairn,helm,kustomize}  cairn finds helm and kustomize
#                                                                next to itself before PATH
#                      DIR/bin/cairn -> ../lib/cairn/bin/cairn    (helm/kustomize stay private)
#                      DIR/etc/cairn/{cairn.toml,cairn.env}      never overwritten: a changed
#                                                                shipped version lands in *.new
#                      DIR/share/cairn/{crds,images}/            CRDs, executor image archive
#                                                                cairn-executor.tar (checked
#                                                                against the digest in
#                                                                cairn-executor.txt)
#                      DIR/share/doc/cairn/                      README, licences, SHA256SUMS
#   --unit-dir DIR   where cairn.service goes (default /etc/systemd/system); its paths are
#                    rewritten for --prefix and --state-dir
#   --state-dir DIR  the data directory (default /var/lib/cairn, the unit's StateDirectory)
#   --no-user        do not create the `cairn` system user nor chown to it (tests, non-root)
#   --no-systemctl   do not run systemctl (daemon-reload, restart on upgrade, stop on removal)
#   --uninstall      remove what an install put there; configuration and data are kept
#   --purge          with --uninstall: also remove the configuration, the data directory and
#                    the `cairn` user
#
# Upgrade: run the newer tarball's install.sh with the same options. Binaries are replaced
# atomically, configuration and data are kept, and a running service is restarted; the new
# binary upgrades the database schema once, keeping a copy of the old file next to it. A
# database written by a newer cairn is refused by an older binary (the service does not start).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=/usr/local
UNIT_DIR=/etc/systemd/system
STATE_DIR=/var/lib/cairn
USER_NAME=cairn
make_user=1
use_systemctl=1
action=install
purge=0

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --unit-dir) [ $# -ge 2 ] || die "--unit-dir needs a directory"; UNIT_DIR=$2; shift 2 ;;
    --unit-dir=*) UNIT_DIR=${1#*=}; shift ;;
    --state-dir) [ $# -ge 2 ] || die "--state-dir needs a directory"; STATE_DIR=$2; shift 2 ;;
    --state-dir=*) STATE_DIR=${1#*=}; shift ;;
    --no-user) make_user=0; shift ;;
    --no-systemctl) use_systemctl=0; shift ;;
    --uninstall) action=uninstall; shift ;;
    --purge) purge=1; shift ;;
    -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
case "$PREFIX$UNIT_DIR$STATE_DIR" in *'|'*|*'
'*) die "paths must not contain '|' or newlines" ;; esac
for d in "$PREFIX" "$UNIT_DIR" "$STATE_DIR"; do
  case "$d" in /*) ;; *) die "$d: an absolute path is needed" ;; esac
done
[ "$purge" = 0 ] || [ "$action" = uninstall ] || die "--purge only goes with --uninstall"

LIBDIR=$PREFIX/lib/cairn
MANIFEST=$LIBDIR/installed-files
UNIT=$UNIT_DIR/cairn.service
# systemctl only for a unit in the running systemd's own directory.
systemd_running() {
  [ "$use_systemctl" = 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}
# The id of the service account, empty with --no-user.
owner() { if [ "$make_user" = 1 ]; then echo "$USER_NAME"; fi; }

uninstall() {
  [ -f "$MANIFEST" ] || die "no cairn installation under $PREFIX ($MANIFEST is missing)"
  if systemd_running && [ "$UNIT_DIR" = /etc/systemd/system ]; then
    systemctl disable --now cairn.service >/dev/null 2>&1 || true
  fi
  # The manifest lists what the install created (files and symlinks, then directories).
  while IFS= read -r path; do
    [ -n "$path" ] || continue
    case "$path" in
      "$PREFIX/etc/cairn/"*) [ "$purge" = 1 ] && rm -f "$path" ;;
      */) rmdir "$path" 2>/dev/null || true ;;
      *) rm -f "$path" ;;
    esac
  done < "$MANIFEST"
  rm -f "$MANIFEST"
  rmdir "$LIBDIR/bin" "$LIBDIR" 2>/dev/null || true
  for dir in "$PREFIX/share/cairn/crds" "$PREFIX/share/cairn/images" "$PREFIX/share/cairn" \
             "$PREFIX/share/doc/cairn/licenses" "$PREFIX/share/doc/cairn"; do
    rmdir "$dir" 2>/dev/null || true
  done
  if systemd_running && [ "$UNIT_DIR" = /etc/systemd/system ]; then systemctl daemon-reload || true; fi
  if [ "$purge" = 1 ]; then
    rm -f "$PREFIX/etc/cairn/"*.new
    rmdir "$PREFIX/etc/cairn" 2>/dev/null || true
    rm -rf "$STATE_DIR"
    if [ "$make_user" = 1 ] && id "$USER_NAME" >/dev/null 2>&1; then userdel "$USER_NAME" || true; fi
    say "removed cairn, its configuration and its data ($STATE_DIR)"
  else
    say "removed cairn; kept the configuration ($PREFIX/etc/cairn) and the data ($STATE_DIR): --purge removes them"
  fi
}

# put MODE SRC DEST: atomic copy (a running binary is replaced, never overwritten in place).
put() {
  mkdir -p "$(dirname "$3")"
  cp "$2" "$3.cairn-new"
  chmod "$1" "$3.cairn-new"
  mv -f "$3.cairn-new" "$3"
  echo "$3" >> "$MANIFEST.tmp"
}

# config SRC DEST: installed once; later a changed shipped file goes to DEST.new.
config() {
  if [ -e "$2" ]; then
    if ! cmp -s "$1" "$2"; then
      cp "$1" "$2.new"; chmod 0640 "$2.new"
      say "kept your $2; the shipped version is $2.new"
    fi
  else
    cp "$1" "$2"; chmod 0640 "$2"
    [ -z "$(owner)" ] || chgrp "$(owner)" "$2"
  fi
  echo "$2" >> "$MANIFEST.tmp"
}

# executor_image: the shipped executor image archive, checked against the digest the release
# noted (SHA256SUMS covers it too; the note is what the README tells sites to compare).
executor_image() {
  note=$HERE/images/cairn-executor.txt
  image=$(sed -n 's/^image: //p' "$note")
  want=$(sed -n 's/^archive-sha256: //p' "$note")
  [ -n "$image" ] && [ -n "$want" ] || die "$note names no image or archive-sha256"
  got=$(sha256sum < "$HERE/images/cairn-executor.tar" | cut -d' ' -f1)
  [ "$got" = "$want" ] \
    || die "images/cairn-executor.tar has sha256 $got, the release noted $want (images/cairn-executor.txt): not installed"
  put 0644 "$HERE/images/cairn-executor.tar" "$PREFIX/share/cairn/images/cairn-executor.tar"
  # Releases before the archive was shipped installed the script that wrote it; gone now.
  rm -f "$PREFIX/share/cairn/images/executor-archive"
  say "installed the executor image $image to $PREFIX/share/cairn/images/cairn-executor.tar (sha256 $got, as noted)"
}

install_all() {
  for f in bin/cairn bin/helm bin/kustomize images/cairn-executor.tar images/cairn-executor.txt \
           systemd/cairn.service etc/cairn.toml etc/cairn.env SHA256SUMS; do
    [ -f "$HERE/$f" ] || die "$HERE/$f is missing: run install.sh from an unpacked cairn tarball"
  done
  if command -v sha256sum >/dev/null 2>&1; then
    (cd "$HERE" && sha256sum --quiet --strict -c SHA256SUMS) || die "the unpacked files do not match SHA256SUMS"
  else
    die "sha256sum not found: it checks SHA256SUMS and the executor image (GNU coreutils)"
  fi
  if [ "$make_user" = 1 ]; then
    [ "$(id -u)" = 0 ] || die "creating the $USER_NAME user needs root (or pass --no-user)"
    if ! id "$USER_NAME" >/dev/null 2>&1; then
      nologin=/usr/sbin/nologin; [ -x "$nologin" ] || nologin=/bin/false
      useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell "$nologin" --comment "cairn server" "$USER_NAME" \
        || die "cannot create the system user $USER_NAME"
      say "created system user $USER_NAME"
    fi
  fi
  old_version=
  if [ -x "$LIBDIR/bin/cairn" ]; then old_version=$("$LIBDIR/bin/cairn" version 2>/dev/null || true); fi

  mkdir -p "$LIBDIR/bin" "$PREFIX/bin" "$PREFIX/etc/cairn" "$PREFIX/share/cairn/crds" \
    "$PREFIX/share/cairn/images" "$PREFIX/share/doc/cairn/licenses" "$UNIT_DIR"
  : > "$MANIFEST.tmp"
  put 0755 "$HERE/bin/cairn" "$LIBDIR/bin/cairn"
  put 0755 "$HERE/bin/helm" "$LIBDIR/bin/helm"
  put 0755 "$HERE/bin/kustomize" "$LIBDIR/bin/kustomize"
  ln -sfn ../lib/cairn/bin/cairn "$PREFIX/bin/cairn"
  echo "$PREFIX/bin/cairn" >> "$MANIFEST.tmp"
  for f in "$HERE"/crds/*; do put 0644 "$f" "$PREFIX/share/cairn/crds/$(basename "$f")"; done
  put 0644 "$HERE/images/cairn-executor.txt" "$PREFIX/share/cairn/images/cairn-executor.txt"
  executor_image
  for f in README.md SHA256SUMS; do put 0644 "$HERE/$f" "$PREFIX/share/doc/cairn/$f"; done
  for f in "$HERE"/licenses/*; do put 0644 "$f" "$PREFIX/share/doc/cairn/licenses/$(basename "$f")"; done

  # The configuration directory is readable by the service's group only (it may hold secrets).
  chmod 0750 "$PREFIX/etc/cairn"
  [ -z "$(owner)" ] || chgrp "$(owner)" "$PREFIX/etc/cairn"
  config "$HERE/etc/cairn.toml" "$PREFIX/etc/cairn/cairn.toml"
  config "$HERE/etc/cairn.env" "$PREFIX/etc/cairn/cairn.env"

  # The unit, with this installation's paths.
  extra=
  [ "$STATE_DIR" = /var/lib/cairn ] || extra="ReadWritePaths=$STATE_DIR"
  sed -e "s|/usr/local/|$PREFIX/|g" -e "s|/var/lib/cairn|$STATE_DIR|g" \
      -e "s|^StateDirectory=cairn\$|StateDirectory=cairn\n$extra|" \
      "$HERE/systemd/cairn.service" > "$UNIT.cairn-new"
  chmod 0644 "$UNIT.cairn-new"; mv -f "$UNIT.cairn-new" "$UNIT"
  echo "$UNIT" >> "$MANIFEST.tmp"

  # The data directory: private to the service account (systemd's StateDirectory does the same).
  mkdir -p "$STATE_DIR"; chmod 0700 "$STATE_DIR"
  [ -z "$(owner)" ] || chown "$(owner):$(owner)" "$STATE_DIR"

  # Directories last, deepest first, so an uninstall removes them once they are empty.
  for dir in "$PREFIX/share/doc/cairn/licenses" "$PREFIX/share/doc/cairn" "$PREFIX/share/cairn/images" \
             "$PREFIX/share/cairn/crds" "$PREFIX/share/cairn"; do
    echo "$dir/" >> "$MANIFEST.tmp"
  done
  mv -f "$MANIFEST.tmp" "$MANIFEST"

  new_version=$("$LIBDIR/bin/cairn" version) || die "the installed $LIBDIR/bin/cairn does not run"
  if [ -n "$old_version" ] && [ "$old_version" != "$new_version" ]; then
    say "upgraded: $old_version -> $new_version"
  else
    say "installed $new_version into $PREFIX"
  fi
  if systemd_running && [ "$UNIT_DIR" = /etc/systemd/system ]; then
    systemctl daemon-reload
    if systemctl is-active --quiet cairn.service; then
      systemctl restart cairn.service
      say "restarted the running cairn.service"
      return 0
    fi
  fi
  cat <<EOF

Next steps:
  1. Cluster access: put a kubeconfig for cairn in $PREFIX/etc/cairn/ (group $USER_NAME, 0640)
     and set KUBECONFIG in $PREFIX/etc/cairn/cairn.env.
  2. Executor image (workflows): load $PREFIX/share/cairn/images/cairn-executor.tar into the
     cluster, e.g. \`kind load image-archive ...\` or \`ctr -n k8s.io images import ...\` on each node.
  3. Start: systemctl enable --now cairn.service
  4. Log in: $PREFIX/bin/cairn admin initial-password --data-dir $STATE_DIR (as root), then
     $PREFIX/bin/cairn login --server http://127.0.0.1:8080 --username admin
EOF
}

case "$action" in
  install) install_all ;;
  uninstall) uninstall ;;
esac
