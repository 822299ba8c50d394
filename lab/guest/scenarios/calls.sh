# Scenario "calls": the tool's call counts for versions_target_func() against the
# target's own tally of which version ran, phase by phase:
#
#   before           calls before any patch names the function
#   a_held           versions_a loads while a task sleeps in versions_target_hold(),
#                    so its transition is held. That task has not switched: its calls
#                    run the original. This shell has switched: its calls run
#                    versions_a.
#   a                calls after the transition
#   b_held, b        the same for versions_b, stacked on versions_a: the held task's
#                    calls run versions_a, the previous version
#   cumulative_held  the same for versions_cumulative, which replaces both; the held
#   cumulative       task's calls run versions_b
#   removal          calls right after one of the tool's reports and right before
#                    versions_cumulative is disabled and freed
#   final            versions_a loaded again, and calls right before SIGINT: only the
#                    tool's final report counts them
#
# Each phase notes its bounds (<phase>_begin_s, <phase>_end_s, from /proc/uptime),
# the calls it made (<phase>_shell_calls, <phase>_holder_calls) and the target's
# tally per version (<phase>_v0 .. _v3). A phase ends with QUIET_S seconds without
# calls, so the tool's report for it (every second) falls inside its bounds.
set -eu
. /lab/lib.sh
. /lab/versions.sh
trap 'hold_release; stop_tool' EXIT

QUIET_S=2
PHASE=
PHASE_TALLY=

phase_begin() {
	PHASE="$1"
	PHASE_TALLY=$(tally_snapshot)
	kmsg "calls phase $PHASE"
	note "${PHASE}_begin_s" "$(now_s)"
}

phase_end() {
	sleep "$QUIET_S"
	tally_notes "$PHASE" "$PHASE_TALLY"
	note "${PHASE}_end_s" "$(now_s)"
}

# shell_calls COUNT: COUNT calls from this shell, which has switched to the newest
# patch.
shell_calls() {
	versions_call "$1"
	note "${PHASE}_shell_calls" "$1"
}

# held_phase NAME PATCH HOLDER_CALLS SHELL_CALLS: loads PATCH while a task sleeps in
# the current version of versions_target_hold(), makes calls from that task and
# from this shell during the held transition, then releases it.
held_phase() {
	local name="$1" patch="$2" holder_calls="$3" shell_calls="$4"
	phase_begin "$name"
	hold_start
	note "${name}_holder_pid" "$HOLDER_PID"
	load_module "$patch"
	# The tool starts counting a new patch's calls once it has read the patch's
	# load from its ring buffer. Waiting for its counters makes the phase check
	# the split of the counts and not that delay. The "stacked" scenario makes
	# calls right after a load.
	wait_counting "$name" "${patch}_func" versions_target_func
	patch_transition_is "$patch" 1 || fail "the transition of $patch is not held"

	hold_call "$holder_calls"
	note "${name}_holder_calls" "$holder_calls"
	shell_calls "$shell_calls"
	note "${name}_holder_patch_state" "$(task_patch_state "$HOLDER_PID")"
	note "${name}_shell_patch_state" "$(task_patch_state $$)"
	if patch_transition_is "$patch" 1; then
		note "${name}_held_during_calls" 1
	else
		note "${name}_held_during_calls" 0
	fi

	# Let the tool report these calls while every patch is still loaded: a replaced
	# patch goes away soon after the release.
	sleep "$QUIET_S"
	hold_release
	wait_patched "$patch"
	phase_end
}

start_tool --calls-interval 1
load_module versions_target

phase_begin before
shell_calls 100
phase_end

held_phase a_held versions_a 10 20

phase_begin a
shell_calls 30
phase_end

check_module versions_b check_b
held_phase b_held versions_b 40 50

phase_begin b
shell_calls 60
phase_end

check_module versions_cumulative check_cumulative
held_phase cumulative_held versions_cumulative 70 80
wait_until 10 "the replaced patches to be freed" sh -c \
	"[ ! -e $LIVEPATCH_SYSFS/versions_a ] && [ ! -e $LIVEPATCH_SYSFS/versions_b ]" ||
	fail "versions_a or versions_b is still in sysfs after versions_cumulative replaced them"
note replaced_gone_s "$(now_s)"
check_loaded check_after_cumulative

phase_begin cumulative
shell_calls 90
phase_end

# The calls follow a report of the tool closely, so that the patch is gone well
# before its next report.
phase_begin removal
reports=$(grep -c '"kind": *"calls"' "$OUT/jsonl" || true)
versions_call 1
if [ "$LAB_TOOL" = 1 ]; then
	wait_until 3 "the tool's next calls report" sh -c \
		"[ \$(grep -c '\"kind\": *\"calls\"' $OUT/jsonl) -gt $reports ]" || true
fi
versions_call 100
note removal_shell_calls 101
disable_patch versions_cumulative
phase_end

# The replaced versions_a is freed but still loaded; load it again.
unload_module versions_a
load_module versions_a
wait_patched versions_a
wait_counting final versions_a_func versions_target_func

phase_begin final
shell_calls 110
stop_tool
tally_notes final "$PHASE_TALLY"
note final_end_s "$(now_s)"

disable_patch versions_a
unload_module versions_a
unload_module versions_b
unload_module versions_cumulative
unload_module versions_target
