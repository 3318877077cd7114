#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs a harness once over every file of its seed corpus, without fuzzing
# (libFuzzer only writes new inputs when it fuzzes a directory, so the
# corpus is passed as files and stays untouched). 'meson test --suite fuzz'.
# A crash exits 1, not libFuzzer's default 77 (which meson reads as a skip).
# Usage: replay-corpus.sh HARNESS CORPUS_DIR
set -eu
exe=$1 dir=$2
[ -d "$dir" ] || { echo "no corpus directory $dir" >&2; exit 1; }
set -- "$dir"/*
[ -e "$1" ] || { echo "corpus $dir is empty" >&2; exit 1; }
exec "$exe" -error_exitcode=1 -timeout_exitcode=1 -runs=1 "$@"
