# Shared by scripts/serve and scripts/test: make .venv with Debian's python3 and install OpenCall into it.
# Sourced, not run. Works as root or through sudo; Debian's python3 refuses bare pip (PEP 668), so
# everything goes into the project's own virtual environment.

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    missing=""
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        echo "==> installing Debian packages:$missing"
        as_root apt-get update -qq
        # shellcheck disable=SC2086
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
    fi
}

make_venv() {
    apt_install python3 python3-venv python3-pip
    if [ ! -x .venv/bin/python ]; then
        echo "==> creating .venv with /usr/bin/python3"
        /usr/bin/python3 -m venv .venv
    fi
    .venv/bin/python -m pip install -q --upgrade pip
}
