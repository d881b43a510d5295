#!/bin/sh
# The Redis suites run against a real redis-server: install Debian's package when it is missing and this user may.
command -v redis-server >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing redis-server for the Redis suites" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2 || exit 1
  # The package starts a system server on port 6379; the suites start their own. Only the service just installed is
  # stopped: a redis-server the user runs is none of this script's business.
  service redis-server stop >/dev/null 2>&1 || true
  exit 0
fi
echo "redis-server is missing: install it (Debian: apt-get install redis-server) to run the Redis suites" >&2
exit 1
