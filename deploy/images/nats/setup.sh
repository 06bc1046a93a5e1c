#!/bin/sh
# Runs inside the image's root filesystem after the packages are installed.
set -eu
# The official image's server lives at /nats-server; keep that path working
# for anyone who sets the entrypoint to it.
ln -sfn /usr/sbin/nats-server /nats-server
