#!/usr/bin/env bash
# Screenshots of the consent page and of an error page, taken in headless Chromium:
#   consent-light.png, consent-dark.png (1280 px wide), consent-phone.png, consent-phone-dark.png
#   (375 px), error-light.png, error-dark.png (an expired sign-in link).
#
#   scripts/consent-screenshots.sh [OUT_DIR]      (default: target/consent-screenshots)
#
# Needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver). The
# pages are served by the browser test's own server on loopback; nothing is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/consent-screenshots}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
SCREENSHOT_DIR="$out" cargo test --test browser -- --exact screenshots
ls -1 "$out"/*.png
