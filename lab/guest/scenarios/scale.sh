# Scenario "scale": a held transition over TASKS extra processes, measured twice
# in one boot: with `livepatch-tui log`, then with `livepatch-tui poll-baseline`
# (which reads every /proc/<pid>/task/<tid>/patch_state once a second, what a
# script without probes must do to follow the same transition).
#
# Each run measures one window: from just before the livepatch is loaded until
# the transition has completed (and, for the tool, until its log shows the
# completion). Notes per run (prefix tool_ or baseline_):
#   cpu_ms         user plus system CPU time of the observer in the window
#                  (/proc/<pid>/stat, 10 ms resolution)
#   rss_before_kb  VmRSS of the observer at the start of the window
#   rss_kb         VmRSS of the observer at the end of the window
#   hwm_kb         VmHWM, its peak resident memory since it started
#   window_ms      length of the window
# The ratios tool/baseline come from the same boot, the same tasks and the same
# hold. This is a benchmark under TCG emulation: the host checks only that the
# tool lost nothing and saw every task.
set -eu
. /lab/lib.sh

PATCH=test_klp_callbacks_demo
RELEASE=/sys/module/test_klp_callbacks_busy/parameters/block_transition
TASKS=5000
HOLD_S=3
SLEEPERS=/tmp/scale-sleepers
BASELINE_PID=

cleanup() {
	stop_tool
	if [ -n "$BASELINE_PID" ]; then
		kill -INT "$BASELINE_PID" 2>/dev/null || true
	fi
	if [ -f "$SLEEPERS" ]; then
		kill $(cat "$SLEEPERS") 2>/dev/null || true
		rm -f "$SLEEPERS"
	fi
}
trap cleanup EXIT

task_count() {
	ls -d /proc/[0-9]*/task/* 2>/dev/null | wc -l
}

# measure RUN PID: one held transition, measured on process PID (none when
# PID is empty), with notes RUN_*.
measure() {
	local run="$1" pid="$2" before=0 started
	if [ -n "$pid" ]; then
		before=$(cpu_ticks "$pid")
		note "${run}_rss_before_kb" "$(status_kb "$pid" VmRSS)"
	fi
	started=$(now_ms)

	load_module test_klp_callbacks_busy block_transition=Y
	load_module "$PATCH"
	sleep "$HOLD_S"
	patch_transition_is "$PATCH" 1 || fail "$run: transition of $PATCH ended before the release"
	echo N > "$RELEASE"
	wait_patched "$PATCH" 60
	note "${run}_transition_ms" $(($(now_ms) - started))

	if [ "$run" = tool ]; then
		wait_until 60 "the tool to log the completion" \
			tool_logged transition_completed "\"patch\": *\"$PATCH\"" ||
			echo "the tool has not logged the completion yet" >&2
	fi
	if [ -n "$pid" ]; then
		note "${run}_cpu_ms" $((($(cpu_ticks "$pid") - before) * 10))
		note "${run}_rss_kb" "$(status_kb "$pid" VmRSS)"
		note "${run}_hwm_kb" "$(status_kb "$pid" VmHWM)"
	fi
	note "${run}_window_ms" $(($(now_ms) - started))

	disable_patch "$PATCH" 60
	unload_module "$PATCH"
	unload_module test_klp_callbacks_busy
}

mem_available_kb() {
	awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo
}

note tasks_before "$(task_count)"
available_before=$(mem_available_kb)
started=$(now_ms)
: > "$SLEEPERS"
for i in $(seq "$TASKS"); do
	sleep 600 &
	echo $! >> "$SLEEPERS"
done
note spawn_ms $(($(now_ms) - started))
note tasks_total "$(task_count)"
available_after=$(mem_available_kb)
note mem_available_kb "$available_after"
note kb_per_task $(((available_before - available_after) / TASKS))

if [ "$LAB_TOOL" != 1 ]; then
	measure kernel_only ""
	exit 0
fi

start_tool
measure tool "$TOOL_PID"
stop_tool
note tool_events_logged "$(wc -l < "$OUT/jsonl")"

"$TOOL" poll-baseline --interval-ms 1000 > "$OUT/baseline" 2>&1 &
BASELINE_PID=$!
# Let it make its first poll, as the tool has made its first inventory.
sleep 2
measure baseline "$BASELINE_PID"
kill -INT "$BASELINE_PID"
wait "$BASELINE_PID" || true
BASELINE_PID=
note baseline_summary "$(tail -n 1 "$OUT/baseline")"

# Ratios tool/baseline with two decimals, or "n/a" when the baseline measured 0.
for figure in cpu_ms rss_before_kb rss_kb hwm_kb; do
	tool=$(awk -F= -v key="tool_$figure" '$1 == key { print $2 }' "$OUT/notes")
	base=$(awk -F= -v key="baseline_$figure" '$1 == key { print $2 }' "$OUT/notes")
	note "ratio_$figure" "$(awk -v a="$tool" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
done
