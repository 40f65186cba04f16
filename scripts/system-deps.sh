#!/usr/bin/env bash
# Install the few system packages the build and the tests need: the headers mysqlclient builds
# against (mysql extra) and Debian's Chromium (the browser test of the Airflow UI).
# Does nothing when they are present; on a machine without apt or root, says what is missing.
set -euo pipefail

missing=()
pkg-config --exists mysqlclient 2>/dev/null || missing+=(default-libmysqlclient-dev pkg-config)
command -v chromium >/dev/null || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "Installing system packages: ${missing[*]}"
  if ! apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q "${missing[@]}" >/dev/null
  fi
else
  echo "Please install: ${missing[*]} (mysqlclient headers for the mysql extra; chromium for the UI test)" >&2
  exit 1
fi
