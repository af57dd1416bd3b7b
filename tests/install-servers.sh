#!/bin/sh
# The real programs the tests start that PyPI does not carry, from Debian's packages (nothing is downloaded by the
# test tools): headless Chromium and its driver for tests/test_browser.py, and the PostgreSQL server for the
# shared-state tests (each test run makes a throw-away cluster of its own: tests/servers/postgres_server.py).
set -e
have() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; }
if have; then exit 0; fi
SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
PACKAGES="chromium chromium-driver postgresql"
$SUDO apt-get install -y -q $PACKAGES >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q $PACKAGES >/dev/null; }
