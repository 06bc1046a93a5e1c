#!/bin/sh
# Entrypoint of payrail's local NATS test image (deploy/images/nats). It reads
# its arguments the way the official nats image does: they are nats-server's
# flags (for example -p 4222 -js -a 127.0.0.1); with none the server reads
# /nats-server.conf; a first argument that is not a flag is a command to run
# instead of the server.
set -eu
if [ "$#" -eq 0 ]; then
  set -- --config /nats-server.conf
fi
case "$1" in
  -*) exec nats-server "$@" ;;
  *) exec "$@" ;;
esac
