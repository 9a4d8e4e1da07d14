#!/bin/sh
# Debian packages servicemonth needs outside Python, installed only when missing:
#   fonts   a font that renders Chinese in the report charts (fonts-noto-cjk)
#   browser headless Chromium, with which the tests open the HTML report
set -eu
need=""
for what in "$@"; do
    case "$what" in
        fonts) fc-list :lang=zh 2>/dev/null | grep -q . || need="$need fonts-noto-cjk fontconfig" ;;
        browser) command -v chromium >/dev/null 2>&1 || need="$need chromium" ;;
        *) echo "system-packages.sh: unknown group $what" >&2; exit 2 ;;
    esac
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "servicemonth needs the Debian packages:$need (run: sudo apt-get install$need)" >&2
    exit 1
fi
echo "installing Debian packages:$need"
apt-get install -y --no-install-recommends $need >/dev/null 2>&1 || {
    apt-get update >/dev/null && apt-get install -y --no-install-recommends $need >/dev/null
}
