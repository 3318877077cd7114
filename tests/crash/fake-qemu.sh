#!/bin/bash
# Stand-in for qemu-system-x86_64 in the crash-matrix test (tests/crash).
# Does what vfiod relies on from QEMU and nothing else: writes its pid to
# the file given with -pidfile (QEMU does so early at start-up), keeps its
# arguments visible in /proc/<pid>/cmdline (vfiod recognises a sandbox's
# QEMU by "vfiod.sandbox=<id>" there), and runs until killed (SIGTERM or
# SIGKILL). Every other argument is ignored. When VFIOD_FAKE_QEMU_PIDS names
# a file, the pid is appended there too, so that the test finds every
# stand-in, also those orphaned by a crash of vfiod.
pidfile=
prev=
for arg in "$@"; do
  if [ "$prev" = "-pidfile" ]; then
    pidfile=$arg
  fi
  prev=$arg
done
if [ -n "$pidfile" ]; then
  echo "$$" > "$pidfile"
fi
if [ -n "${VFIOD_FAKE_QEMU_PIDS:-}" ]; then
  echo "$$" >> "$VFIOD_FAKE_QEMU_PIDS"
fi
# One process (same pid as above) whose argv[0] carries the arguments.
exec -a "fake-qemu $*" sleep 100000
