# Sourced (with no arguments: dash ignores them) by hoody's scripts: puts cargo and rustc on
# PATH when they are not there already — root's rustup toolchain, the toolchain of the user who
# ran sudo ($SUDO_USER's ~/.cargo/bin, with RUSTUP_HOME pointing at their ~/.rustup so rustup's
# proxies find the installed toolchain), or /usr/local/cargo/bin. Changes nothing else.
if ! command -v cargo >/dev/null 2>&1; then
    hoody_user_home=
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        hoody_user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    fi
    for hoody_c in "${CARGO_HOME:-$HOME/.cargo}/bin" "${hoody_user_home:+$hoody_user_home/.cargo/bin}" /usr/local/cargo/bin; do
        if [ -n "$hoody_c" ] && [ -x "$hoody_c/cargo" ]; then
            PATH="$hoody_c:$PATH"
            export PATH
            if [ -n "$hoody_user_home" ] && [ "$hoody_c" = "$hoody_user_home/.cargo/bin" ] &&
                [ -z "${RUSTUP_HOME:-}" ] && [ -d "$hoody_user_home/.rustup" ]; then
                RUSTUP_HOME=$hoody_user_home/.rustup
                export RUSTUP_HOME
            fi
            break
        fi
    done
    unset hoody_c hoody_user_home
fi
