#!/bin/bash
# The man pages (doc/man/*.scd, built with scdoc) render with man(1), have
# their sections, and vfiod.conf(5) names every key vfiod knows (the
# known_keys list of vfiod/config/config.c): the page cannot fall behind the code.
set -u
build=$1 src=$2
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
command -v man > /dev/null || { echo "not ok - man missing (apt-get install man-db)"; exit 1; }
for page in vfiod.8 vfioctl.1 vfiod.conf.5; do
  f=$build/doc/man/$page
  if [ ! -s "$f" ]; then nok "$page was not built (scdoc missing? apt-get install scdoc)"; continue; fi
  text=$(MANWIDTH=100 man -l "$f" 2> /dev/null)
  for s in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
    grep -q "^$s" <<< "$text" || nok "$page has no $s section"
  done
  ok "$page renders ($(wc -l <<< "$text") lines)"
done
conf=$(MANWIDTH=200 man -l "$build/doc/man/vfiod.conf.5" 2> /dev/null)
missing=''
for k in $(sed -n '/known_keys\[\] = {/,/NULL/p' "$src/vfiod/config/config.c" | grep -o '"[a-z]*/[a-z_0-9]*"' | tr -d '"'); do
  group=${k%%/*} key=${k#*/}
  [ "$group" = testing ] && continue # test-only roots, not for operators
  awk -v g="[$group]" -v k="$key" '
    /^\[/ { in_g = ($1 == g) }
    in_g && $0 ~ ("(^|[ ,])" k "[ ,(]") { found = 1 }
    END { exit !found }' <<< "$conf" || missing="$missing [$group] $key"
done
[ -z "$missing" ] && ok "vfiod.conf(5) names every key of vfiod/config/config.c" || nok "vfiod.conf(5) lacks:$missing"
echo "# man-pages: $pass passed, $fail failed"
[ "$fail" = 0 ]
