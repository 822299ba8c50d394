# Scenario "blocked": a transition held by a task that sleeps in a patched function,
# as in the selftests' "busy target module" case (test-callbacks.sh, Linux 6.1).
#
# test_klp_callbacks_busy.ko with block_transition=Y starts a work item whose
# busymod_work_func() loops in msleep() until the parameter is cleared.
# test_klp_callbacks_demo.ko patches busymod_work_func(), so the kworker that runs
# it cannot switch and the transition stays in progress. The kernel retries about
# once a second; after the release the kworker leaves the function and switches.
set -eu
. /lab/lib.sh
trap stop_tool EXIT

PATCH=test_klp_callbacks_demo
RELEASE=/sys/module/test_klp_callbacks_busy/parameters/block_transition
HOLD_TIMEOUT_S=15

# Whether the tool has reported the kworker in busymod_work_func at two or more
# checks by the kernel, i.e. counted a retry.
tool_saw_repeated_block() {
	grep '"reason": *"sleeping_in_function"' "$OUT/jsonl" |
		grep -Eq '"attempts": *([2-9]|[1-9][0-9])'
}

start_tool

load_module test_klp_callbacks_busy block_transition=Y
started=$(now_ms)
load_module "$PATCH"
patch_transition_is "$PATCH" 1 || fail "transition of $PATCH is not in progress after loading it"

# Hold the transition until the tool has reported the blocked task at a second
# check by the kernel, or for 3 s (two or three checks) when the tool is not running.
if [ "$LAB_TOOL" = 1 ]; then
	wait_until "$HOLD_TIMEOUT_S" "a task_blocked event with attempts >= 2 in the tool's log" \
		tool_saw_repeated_block || echo "releasing without a repeated task_blocked event" >&2
else
	sleep 3
fi
if patch_transition_is "$PATCH" 1; then
	note transition_during_hold 1
else
	note transition_during_hold 0
fi

note released_at_s "$(now_s)"
kmsg "releasing busymod_work_func"
echo "% echo N > $RELEASE"
echo N > "$RELEASE"
wait_patched "$PATCH" 20
note patch_ms $(($(now_ms) - started))

disable_patch "$PATCH"
unload_module "$PATCH"
unload_module test_klp_callbacks_busy

stop_tool
