# Shell helpers for the lab guest (busybox ash), sourced by /init and by each
# scenario script. A scenario runs with OUT set to its output directory; every file
# there is sent to the host, which stores it as target/lab/out/<scenario>.<file>.

DATA_PORT=/dev/ttyS1
MODULE_DIR=/lib/modules-lab
LIVEPATCH_SYSFS=/sys/kernel/livepatch
TOOL=/usr/bin/livepatch-tui
TOOL_READY_TIMEOUT_S=60
TOOL_PID=

# Writes one marker line to the data channel (see xtask/src/outputs.rs).
data_marker() {
	echo "@@LAB $*" > "$DATA_PORT"
}

# send_file SCENARIO NAME PATH: sends PATH framed by begin and end markers. awk
# ends the last line with a newline, so the end marker always starts a line.
send_file() {
	{
		echo "@@LAB begin $1 $2"
		awk '{ print }' "$3"
		echo "@@LAB end $1 $2"
	} > "$DATA_PORT"
}

# note KEY VALUE: records a result for the host-side checks.
note() {
	echo "$1=$2" >> "$OUT/notes"
	echo "note: $1=$2"
}

# Writes a line to the kernel log, so dmesg shows where each step happened.
kmsg() {
	echo "lab: $*" > /dev/kmsg
}

fail() {
	echo "FAILED: $*" >&2
	kmsg "FAILED: $*"
	exit 1
}

# Prints the time since boot in milliseconds (10 ms resolution, from /proc/uptime).
now_ms() {
	local uptime rest
	read -r uptime rest < /proc/uptime
	echo "${uptime%.*}${uptime#*.}0"
}

# Prints the time since boot in seconds, as /proc/uptime has it.
now_s() {
	local uptime rest
	read -r uptime rest < /proc/uptime
	echo "$uptime"
}

# wait_until TIMEOUT_S DESCRIPTION COMMAND...: runs COMMAND every 20 ms until it
# succeeds. Prints a message and returns 1 after TIMEOUT_S seconds.
wait_until() {
	local timeout_s="$1" description="$2"
	shift 2
	local deadline=$(($(now_ms) + timeout_s * 1000))
	until "$@"; do
		if [ "$(now_ms)" -ge "$deadline" ]; then
			echo "timed out after ${timeout_s} s waiting for: $description" >&2
			return 1
		fi
		usleep 20000
	done
}

# patch_transition_is PATCH VALUE: whether /sys/kernel/livepatch/PATCH/transition
# reads VALUE.
patch_transition_is() {
	local value=
	read -r value < "$LIVEPATCH_SYSFS/$1/transition" 2>/dev/null || return 1
	[ "$value" = "$2" ]
}

# patch_gone PATCH: whether the kernel has freed the patch (its sysfs directory is
# removed once an unpatching transition completes).
patch_gone() {
	[ ! -e "$LIVEPATCH_SYSFS/$1" ]
}

# load_module NAME [PARAM=VALUE...]: loads $MODULE_DIR/NAME.ko.
load_module() {
	local name="$1"
	shift
	echo "% insmod $name.ko $*"
	insmod "$MODULE_DIR/$name.ko" "$@" || fail "insmod $name.ko failed"
}

# unload_module NAME: removes a module, retrying for up to 10 s while it is busy
# (a disabled livepatch module stays in use until the kernel frees the patch).
unload_module() {
	echo "% rmmod $1"
	wait_until 10 "rmmod $1" rmmod "$1" 2>/dev/null || fail "rmmod $1 failed"
}

# wait_patched PATCH [TIMEOUT_S]: waits until the patching transition of PATCH,
# just loaded, completes (30 s by default).
wait_patched() {
	wait_until "${2:-30}" "$1 patched" patch_transition_is "$1" 0 || fail "transition of $1 to patched did not complete"
}

# disable_patch PATCH: writes 0 to enabled and waits until the kernel frees the patch.
disable_patch() {
	echo "% echo 0 > $LIVEPATCH_SYSFS/$1/enabled"
	echo 0 > "$LIVEPATCH_SYSFS/$1/enabled" || fail "disabling $1 failed"
	wait_until "${2:-30}" "$1 unpatched" patch_gone "$1" || fail "transition of $1 to unpatched did not complete"
}

# start_tool [OPTION...]: starts `livepatch-tui log OPTION...` in the background,
# writing to $OUT/jsonl, and waits until it has written its inventory, i.e. has
# attached its probes. Does nothing when the lab runs without the tool (lab.tool=0
# on the kernel command line).
start_tool() {
	[ "$LAB_TOOL" = 1 ] || return 0
	local started
	started=$(now_ms)
	: > "$OUT/jsonl"
	"$TOOL" log --output "$OUT/jsonl" "$@" 2> "$OUT/tool-stderr" &
	TOOL_PID=$!
	if ! wait_until "$TOOL_READY_TIMEOUT_S" "the tool's inventory line" \
		grep -q '"kind": *"inventory"' "$OUT/jsonl"; then
		stop_tool
		fail "livepatch-tui wrote no inventory line within $TOOL_READY_TIMEOUT_S s; see tool-stderr"
	fi
	note tool_ready_ms $(($(now_ms) - started))
}

# Whether process $1 has exited: /proc/PID is gone or the process is a zombie
# (the shell reaps its children only in `wait`).
process_exited() {
	local pid="$1" state=
	[ -e "/proc/$pid/stat" ] || return 0
	state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 0
	[ "$state" = Z ]
}

# Stops the tool with SIGINT and records its exit code as the note tool_exit.
# Sends SIGKILL if it has not exited after 10 s (the note then shows 137).
stop_tool() {
	[ -n "$TOOL_PID" ] || return 0
	local pid="$TOOL_PID" code=0
	TOOL_PID=
	kill -INT "$pid" 2>/dev/null
	if ! wait_until 10 "the tool to exit after SIGINT" process_exited "$pid"; then
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" || code=$?
	note tool_exit "$code"
}

# dmesg_interval_ms FILE FIRST LAST: milliseconds between the first line of the
# dmesg excerpt FILE that contains FIRST and the next line after it that contains
# LAST, from the kernel log timestamps (microsecond resolution). Prints nothing if
# either line is missing.
dmesg_interval_ms() {
	awk -v first="$2" -v last="$3" '
		function seconds(line) { sub(/^\[ */, "", line); sub(/\].*/, "", line); return line + 0 }
		begin == "" && index($0, first) { begin = seconds($0); next }
		begin != "" && index($0, last) { printf "%d\n", (seconds($0) - begin) * 1000; exit }
	' "$1"
}

# dmesg_since MARKER: the kernel log after the last line that contains MARKER.
dmesg_since() {
	dmesg | awk -v marker="$1" 'index($0, marker) { lines = ""; next } { lines = lines $0 "\n" } END { printf "%s", lines }'
}

# Brings the kernel back to no livepatch and no lab module loaded, so that a failed
# scenario does not disturb the next one.
reset_kernel_state() {
	local busy=/sys/module/test_klp_callbacks_busy/parameters/block_transition
	[ -w "$busy" ] && echo N > "$busy"
	local patch
	for patch in "$LIVEPATCH_SYSFS"/*; do
		[ -e "$patch/enabled" ] && echo 0 > "$patch/enabled" 2>/dev/null
	done
	wait_until 30 "all livepatches freed" sh -c "[ -z \"\$(ls $LIVEPATCH_SYSFS)\" ]" || true

	# Livepatch modules must go before the modules they patch, so retry a few rounds.
	local round module name
	for round in 1 2 3; do
		for module in "$MODULE_DIR"/*.ko; do
			name=$(basename "$module" .ko | tr - _)
			[ -d "/sys/module/$name" ] && rmmod "$name" 2>/dev/null
		done
	done
	return 0
}

# tool_logged KIND [PATTERN...]: whether the tool's log has a KIND event whose
# line also matches each extended regular expression PATTERN.
tool_logged() {
	local kind="$1" lines pattern
	shift
	lines=$(grep "\"kind\": *\"$kind\"" "$OUT/jsonl") || return 1
	for pattern in "$@"; do
		lines=$(printf '%s\n' "$lines" | grep -E "$pattern") || return 1
	done
}

# dmesg_count_since MARKER TEXT: how many kernel log lines after the last line
# that contains MARKER contain TEXT.
dmesg_count_since() {
	dmesg_since "$1" | grep -c -F "$2" || true
}

# dmesg_count_at_least N MARKER TEXT: whether dmesg_count_since MARKER TEXT is N
# or more.
dmesg_count_at_least() {
	[ "$(dmesg_count_since "$2" "$3")" -ge "$1" ]
}

# cpu_ticks PID: user plus system CPU time of PID, in clock ticks of 10 ms. These
# are fields 14 and 15 of /proc/PID/stat, which awk finds as long as the comm field
# has no spaces, as for our tools.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# status_kb PID FIELD: a field of /proc/PID/status in kB, such as VmRSS or VmHWM.
status_kb() {
	awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status"
}
