# Scenario "nonroot": the tool run by an unprivileged user. The live commands need
# root to load their probes and must report that; `check` reads only sysfs and BTF,
# which every user may read, so it must give the same verdicts as for root.
#
# Two stacked patches (versions_a and versions_b on versions_target_func) give
# `check` a warning to report. Each command's output goes to $OUT/<name> and
# $OUT/<name>-stderr, and its exit code to the note <name>_exit.
set -eu
. /lab/lib.sh
. /lab/versions.sh
trap stop_tool EXIT

USER_NAME=lab
USER_ID=1000
# Bounds each live command, in case it starts instead of stopping at the check.
LIVE_TIMEOUT_S=30

# The initramfs has no user database: add root and one unprivileged user.
add_user() {
	mkdir -p /etc
	[ -e /etc/passwd ] || echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd
	[ -e /etc/group ] || echo 'root:x:0:' > /etc/group
	grep -q "^$USER_NAME:" /etc/passwd ||
		echo "$USER_NAME:x:$USER_ID:$USER_ID:lab user:/tmp:/bin/sh" >> /etc/passwd
	grep -q "^$USER_NAME:" /etc/group || echo "$USER_NAME:x:$USER_ID:" >> /etc/group
}

# as_user NAME COMMAND: runs the shell command COMMAND as the unprivileged user.
as_user() {
	local name="$1" code=0
	echo "% su $USER_NAME -c '$2'"
	su -s /bin/sh "$USER_NAME" -c "$2" > "$OUT/$name" 2> "$OUT/$name-stderr" || code=$?
	note "${name}_exit" "$code"
	cat "$OUT/$name-stderr"
}

add_user
start_tool

load_module versions_target
load_module versions_a
wait_patched versions_a
load_module versions_b
wait_patched versions_b

as_user user_id "id -u"
as_user user_log "timeout -s INT $LIVE_TIMEOUT_S $TOOL log --output /tmp/nonroot.jsonl"
as_user user_dashboard "timeout -s INT $LIVE_TIMEOUT_S $TOOL < /dev/null"
as_user user_probes "timeout -s INT $LIVE_TIMEOUT_S $TOOL probes"

check_loaded root_check
as_user user_check "$TOOL check --format json"
as_user user_check_text "$TOOL check"
check_module versions_cumulative root_check_module
as_user user_check_module "$TOOL check --format json --module $MODULE_DIR/versions_cumulative.ko"

stop_tool

disable_patch versions_b
disable_patch versions_a
unload_module versions_b
unload_module versions_a
unload_module versions_target
