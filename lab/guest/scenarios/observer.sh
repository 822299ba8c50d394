# Scenario "observer": whether the tool slows a transition down or makes stacks
# unreliable. Runs the blocked-then-released transition of the "blocked" scenario
# twice, without and then with the tool, holding it for a fixed time each run.
#
# Notes per run (prefix without_tool_ or with_tool_):
#   ms                   load of the livepatch to transition 0, polled in sysfs
#   kernel_ms            "starting patching transition" to "patching complete"
#   release_to_done_ms   release of the work function to "patching complete"
#   held_checks          kernel checks that found the task in busymod_work_func
#   unreliable           "has an unreliable stack" lines in the kernel log
# The kernel retries a held transition on whole-second boundaries
# (round_jiffies_relative(HZ) in kernel/livepatch/transition.c), so durations of
# two runs can differ by up to a second without any cause in the tool.
set -eu
. /lab/lib.sh
trap stop_tool EXIT

PATCH=test_klp_callbacks_demo
RELEASE=/sys/module/test_klp_callbacks_busy/parameters/block_transition
HOLD_S=3

# run_transition RUN: one blocked-then-released transition, with notes RUN_*.
run_transition() {
	local run="$1" started excerpt="$OUT/dmesg-$1"
	kmsg "observer run $run begin"

	load_module test_klp_callbacks_busy block_transition=Y
	started=$(now_ms)
	load_module "$PATCH"
	sleep "$HOLD_S"
	patch_transition_is "$PATCH" 1 || fail "$run: transition of $PATCH ended before the release"
	kmsg "observer run $run release"
	echo N > "$RELEASE"
	wait_patched "$PATCH" 20
	note "${run}_ms" $(($(now_ms) - started))

	disable_patch "$PATCH"
	unload_module "$PATCH"
	unload_module test_klp_callbacks_busy

	dmesg_since "lab: observer run $run begin" > "$excerpt"
	note "${run}_kernel_ms" "$(dmesg_interval_ms "$excerpt" "'$PATCH': starting patching transition" "'$PATCH': patching complete")"
	note "${run}_release_to_done_ms" "$(dmesg_interval_ms "$excerpt" "lab: observer run $run release" "'$PATCH': patching complete")"
	note "${run}_held_checks" "$(grep -c 'is sleeping on function busymod_work_func' "$excerpt" || true)"
	note "${run}_unreliable" "$(grep -c 'has an unreliable stack' "$excerpt" || true)"
}

note hold_s "$HOLD_S"
run_transition without_tool

if [ "$LAB_TOOL" = 1 ]; then
	start_tool
	run_transition with_tool
	stop_tool
fi
