#!/bin/bash
# The bash completion of vfioctl (vfiod/data/vfioctl.bash-completion) offers
# the commands, sub-commands and options of `vfioctl --help`, and every
# command and option it offers is one vfioctl knows.
set -u
comp=$1 vfioctl=$2
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
# shellcheck disable=SC1090
. "$comp"
# complete LINE: the candidates for the last word of LINE
complete_line() {
  local line=$1
  read -r -a COMP_WORDS <<< "$line"
  [[ $line == *' ' ]] && COMP_WORDS+=('')
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _vfioctl
  printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '
}
expect() {
  local got
  got=$(complete_line "$1")
  [[ " $got" == *" $2 "* ]] && ok "'$1' offers $2" || nok "'$1' offers '$got', not $2"
}
expect "vfioctl " sandbox
expect "vfioctl sa" sandbox
expect "vfioctl sandbox " create
expect "vfioctl sandbox cr" create
expect "vfioctl sandbox create --g" --gpus
expect "vfioctl bind 0000:00:00.0 --f" --force
expect "vfioctl reconcile --" --force
expect "vfioctl initramfs " build
expect "vfioctl im" image
expect "vfioctl image " build
expect "vfioctl image build --g" --gpu
expect "vfioctl image build --gpu --o" --output
expect "vfioctl pool " install-boot
expect "vfioctl pool status --" --fix
expect "vfioctl bind 0000:00:00.0 --p" --persist
expect "vfioctl op" open-group
expect "vfioctl open-group 0000:00:00.0 --e" --exec
expect "vfioctl open-group 0000:00:00.0 --exec -- bas" bash
help=$("$vfioctl" --help 2>&1)
# every command and option the completion offers is in vfioctl's help
missing=''
for w in $(grep -o -- '--[a-z-]*\|"[a-z ]*"' "$comp" | tr -d '"' | tr ' ' '\n' | grep -v '^$' | sort -u); do
  case $w in --socket | --json | --help) continue ;; esac
  grep -q -- "$w" <<< "$help" || missing="$missing $w"
done
[ -z "$missing" ] && ok "every word the completion offers is in vfioctl --help" || nok "not in vfioctl --help:$missing"
echo "# completion: $pass passed, $fail failed"
[ "$fail" = 0 ]
