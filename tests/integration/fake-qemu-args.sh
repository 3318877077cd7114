# shellcheck shell=bash disable=SC2034 # the variables are the sourcing stand-in's
# Sourced by the stand-in QEMUs the integration tests write (TEST ONLY):
# reads QEMU's arguments as vfiod passes them and sets
#   pidfile  -pidfile PATH
#   fd       the console fd (-add-fd fd=N,...,opaque=serial-log)
#   payload  the workload's payload (-fw_cfg name=opt/org.vfiod/payload,file=PATH)
#   path     -serial file:PATH (an older vfiod's console)
#   cmd      the payload's cmd (its third line, after the header and "cmd N")
# writes its pid to the pidfile and to $VFIOD_FAKE_QEMU_PIDS (else to
# qemu.pids next to the stand-in), and opens the console as fd 9 (exits 1
# without one).
pidfile='' fd='' payload='' path='' prev='' cmd=''
for arg in "$@"; do
  case $prev in
    -pidfile) pidfile=$arg ;;
    -add-fd) case $arg in *opaque=serial-log*) fd=${arg#fd=} fd=${fd%%,*} ;; esac ;;
    -fw_cfg) case $arg in name=opt/org.vfiod/payload,file=*) payload=${arg#*,file=} ;; esac ;;
    -serial) case $arg in file:*) path=${arg#file:} ;; esac ;;
  esac
  prev=$arg
done
[ -n "$pidfile" ] && echo $$ > "$pidfile"
echo $$ >> "${VFIOD_FAKE_QEMU_PIDS:-$(dirname "$0")/qemu.pids}"
if [ -n "$fd" ]; then exec 9>&"$fd"; elif [ -n "$path" ]; then exec 9>> "$path"; else exit 1; fi
[ -n "$payload" ] && cmd=$(head -c 8192 "$payload" | sed -n 3p)
