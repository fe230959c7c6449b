#!/bin/sh
# Inside a root file system: is everything that packaging/deps.list says MODE provides there?
#   check.sh DEPS_LIST MODE...      one line per item: "ok MODE PACKAGE ITEM" or "MISSING ..."
# Exits 1 when anything is missing. Used by tests/fresh/run.sh in the fresh Debian root.
set -u
list=$1
shift
rc=0
for mode in "$@"; do
    # shellcheck disable=SC2013
    while read -r m pkg items; do
        case "$m" in "" | "#"*) continue ;; esac
        [ "$m" = "$mode" ] || continue
        for item in $items; do
            case "$item" in
                pc:*) pkg-config --exists "${item#pc:}" 2>/dev/null ;;
                /*) [ -e "$item" ] ;;
                *) command -v "$item" >/dev/null 2>&1 ;;
            esac && echo "ok $mode $pkg $item" || { echo "MISSING $mode $pkg $item"; rc=1; }
        done
    done < "$list"
done
exit $rc
