# Scenario "calls_overhead": what counting calls costs a patched function. A
# benchmark, not a timed test: it records figures and asserts only that the counts
# are right.
#
# Each run starts the tool, loads versions_a, and times two loops through the
# patched versions_target_func():
#   ticks  a syscall-bound loop from user space: dd reads the target's `tick` file
#          one byte at a time, and each read() calls the function once
#   bench  a tight loop of calls inside the module, timed with ktime there
# Runs alternate between counting off (--no-calls) and on, ROUNDS times each, so
# that drift in the host's load affects both alike.
#
# Notes per run (off1, on1, off2, ...): <run>_ticks_ms, <run>_bench_ns, and
# <run>_calls (calls made) against <run>_counted (the tool's entered count).
set -eu
. /lab/lib.sh
. /lab/versions.sh
trap stop_tool EXIT

TICKS=500000
WARMUP_TICKS=1000
BENCH_CALLS=500000
ROUNDS=3

note ticks "$TICKS"
note bench_calls "$BENCH_CALLS"
note rounds "$ROUNDS"

# counted_calls: the sum of "entered" over the tool's calls events for
# versions_target_func().
counted_calls() {
	grep '"kind":"calls"' "$OUT/jsonl" | grep '"function":"versions_target_func"' |
		sed -n 's/.*"entered":\([0-9]*\).*/\1/p' | awk '{ sum += $1 } END { print sum + 0 }'
}

# counted_is COUNT: whether counted_calls prints COUNT.
counted_is() {
	[ "$(counted_calls)" = "$1" ]
}

# measure RUN OPTION...: one run with the tool started with OPTIONS.
measure() {
	local run="$1" started calls
	shift
	kmsg "calls_overhead run $run"
	start_tool --calls-interval 1 "$@"
	load_module versions_a
	wait_patched versions_a
	case "$run" in
	on*) wait_counting "$run" versions_a_func versions_target_func ;;
	esac

	dd if="$VERSIONS_DEBUGFS/tick" of=/dev/null bs=1 count="$WARMUP_TICKS" 2>/dev/null
	started=$(now_ms)
	dd if="$VERSIONS_DEBUGFS/tick" of=/dev/null bs=1 count="$TICKS" 2>/dev/null
	note "${run}_ticks_ms" $(($(now_ms) - started))
	echo "$BENCH_CALLS" > "$VERSIONS_DEBUGFS/bench"
	note "${run}_bench_ns" "$(sed -n 's/.*ns=//p' "$VERSIONS_DEBUGFS/bench")"

	calls=$((WARMUP_TICKS + TICKS + BENCH_CALLS))
	note "${run}_calls" "$calls"
	if [ "$LAB_TOOL" = 1 ]; then
		case "$run" in
		on*) wait_until 5 "the tool to report $calls calls" counted_is "$calls" || true ;;
		esac
		note "${run}_counted" "$(counted_calls)"
	fi

	disable_patch versions_a
	unload_module versions_a
	stop_tool
}

load_module versions_target
round=1
while [ "$round" -le "$ROUNDS" ]; do
	measure "off$round" --no-calls
	measure "on$round"
	round=$((round + 1))
done
unload_module versions_target
