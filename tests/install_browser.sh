#!/usr/bin/env bash
# Installs the browser for tests/test_demo.py's browser test: Debian's chromium and its chromedriver, from the
# distribution's packages (never a browser build that a test tool downloads). CI runs it as root; elsewhere it says
# why it installs nothing, and the browser test then skips with that reason (in CI it fails instead).
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "install_browser.sh: $(chromium --version 2>/dev/null) and its chromedriver are installed"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install_browser.sh: no apt-get here; install chromium and chromedriver with your package manager, or the browser test skips"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_browser.sh: not root; run 'sudo apt-get install -y chromium chromium-driver', or the browser test skips"
    exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
echo "install_browser.sh: installed $(chromium --version 2>/dev/null)"
