#!/bin/sh
# A stand-in for your job: the machine's work cycle. While it runs, updlock
# (entry.sh) holds the update lock and keeps the actuator line active; it
# does not touch GPIO itself. Replace it with your program (entry.sh, line 3).
#
#   job.sh [CYCLES [SECONDS]]    default: 3 cycles of 10 s
set -eu
cycles=${1:-3}
seconds=${2:-10}
i=1
while [ "$i" -le "$cycles" ]; do
	echo "job: cycle $i of $cycles (uid $(id -u))"
	sleep "$seconds"
	i=$((i + 1))
done
echo "job: done"
