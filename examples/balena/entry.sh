#!/bin/sh
# The container's entry point: runs the job under updlock, so that the balena
# update lock is held and the actuator line is active exactly while the job
# runs. The line goes safe first, then the lock is released, however the job
# ends; on a stop, an update or an override too (SIGTERM to updlock,
# which is PID 1 here: this script ends in exec).
#
# updlock runs as root: the service's lock directory (/tmp/balena) is
# root-owned 0755 until the supervisor first locks it, and /dev/gpiochip0 is
# root's. The job runs as JOB_USER, and needs neither (README.md, "Root").
set -eu

# ---- The three lines to change (README.md) -------------------------------
ACTUATOR=${ACTUATOR:-GPIO17}           # 1. the actuator's line (--gpio); add " --active-low" if it is on when low
JOB_USER=${JOB_USER-1000:1000}         # 2. uid:gid the job runs as; empty (JOB_USER=): as root
[ "$#" -gt 0 ] || set -- /usr/src/app/job.sh   # 3. the job and its arguments (or the service's `command:`)
# --------------------------------------------------------------------------
# ACTUATOR and JOB_USER can also be set per device or fleet as service
# variables, without a rebuild. The lock directory is found by updlock itself
# ($BALENA_APP_LOCK_PATH, which the supervisor sets, else /tmp/balena);
# UPDLOCK_LOCK_DIR overrides it (the example's tests do).

if [ -n "$JOB_USER" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "entry.sh: running as uid $(id -u): updlock must run as root to take the lock and the line;" \
			"run the container as root (no USER, no user:) and let JOB_USER choose the job's user" >&2
		exit 77 # EX_NOPERM, as updlock's own permission errors
	fi
	# setpriv (util-linux) drops to JOB_USER for the job only. --pdeathsig
	# keep: a change of uid clears the parent-death signal updlock set, and
	# the job would go on if updlock were killed. --no-new-privs: no setuid
	# binary gets root back.
	set -- setpriv --reuid="${JOB_USER%%:*}" --regid="${JOB_USER#*:}" --clear-groups \
		--no-new-privs --pdeathsig keep -- "$@"
fi

# --kick: once the job has ended and the lock is released, a pending update
# is applied at once, not at the end of the supervisor's backoff (up to 15
# minutes later). It uses the supervisor API (the label in docker-compose.yml).
set -f # ACTUATOR is split into words on purpose ("GPIO17 --active-low"), never globbed
# shellcheck disable=SC2086
exec updlock run --kick --gpio $ACTUATOR -- "$@"
