# Scenario "observer": whether the tool slows transitions down or makes stacks
# unreliable. Runs ROUNDS rounds without the tool, then ROUNDS rounds with it.
# A round is two transitions:
#   * livepatch-sample, which completes in the first pass, made by insmod;
#   * the blocked-then-released transition of the "blocked" scenario, held for
#     HOLD_S seconds, which only the kernel's retry work can complete.
#
# Notes per round (prefix without_tool_N_ or with_tool_N_):
#   sample_kernel_ms     "starting patching transition" to "patching complete"
#                        of livepatch_sample, from kernel log timestamps
#   ms                   load of the held livepatch to transition 0, polled
#   kernel_ms            the same from kernel log timestamps
#   release_to_done_ms   release of the work function to "patching complete"
#   held_checks          kernel checks that found the task in busymod_work_func
#   unreliable           "has an unreliable stack" lines in the kernel log
# The kernel retries a held transition on whole-second boundaries
# (round_jiffies_relative(HZ) in kernel/livepatch/transition.c), so durations of
# two rounds can differ by up to a second without any cause in the tool.
set -eu
. /lab/lib.sh
trap stop_tool EXIT

PATCH=test_klp_callbacks_demo
RELEASE=/sys/module/test_klp_callbacks_busy/parameters/block_transition
ROUNDS=3
HOLD_S=2

# run_round RUN: one round, with notes RUN_*.
run_round() {
	local run="$1" started excerpt="$OUT/dmesg-$1"
	kmsg "observer run $run begin"

	load_module livepatch-sample
	wait_patched livepatch_sample
	disable_patch livepatch_sample
	unload_module livepatch-sample

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
	note "${run}_sample_kernel_ms" "$(dmesg_interval_ms "$excerpt" "'livepatch_sample': starting patching transition" "'livepatch_sample': patching complete")"
	note "${run}_kernel_ms" "$(dmesg_interval_ms "$excerpt" "'$PATCH': starting patching transition" "'$PATCH': patching complete")"
	note "${run}_release_to_done_ms" "$(dmesg_interval_ms "$excerpt" "lab: observer run $run release" "'$PATCH': patching complete")"
	note "${run}_held_checks" "$(grep -c 'is sleeping on function busymod_work_func' "$excerpt" || true)"
	note "${run}_unreliable" "$(grep -c 'has an unreliable stack' "$excerpt" || true)"
}

note rounds "$ROUNDS"
note hold_s "$HOLD_S"
for round in $(seq "$ROUNDS"); do
	run_round "without_tool_$round"
done

if [ "$LAB_TOOL" = 1 ]; then
	start_tool
	for round in $(seq "$ROUNDS"); do
		run_round "with_tool_$round"
	done
	stop_tool
fi
