# Scenario "stacked": two livepatches that do not replace each other
# (.replace = false) patch the same function, versions_target_func(). On a kernel
# without replace sets both stay enabled and the last loaded runs.
#
# Before loading the second patch, `livepatch-tui check --module` judges it
# (check_module: its JSON verdict). After loading, 50 calls show which version
# runs, both in the target's own tally and in the tool's call counts: right after
# the load (calls), and again seconds later (settled). The one-shot check on the
# loaded patches (check_loaded) runs between the two.
set -eu
. /lab/lib.sh
. /lab/versions.sh
trap stop_tool EXIT

CALLS=50

start_tool --calls-interval 1

load_module versions_target
load_module versions_a
wait_patched versions_a

check_module versions_b check_module
# A watcher notes how long after the load the tool's counter sits on versions_b's
# replacement: calls made before that are not counted as versions_b's.
if [ "$LAB_TOOL" = 1 ]; then
	started=$(now_ms)
	(
		if wait_until 20 "the tool's counter on versions_b_func" kprobe_on versions_b_func; then
			note counting_after_load_ms $(($(now_ms) - started))
		else
			note counting_after_load_ms none
		fi
	) &
	watcher=$!
fi
before=$(tally_snapshot)
note calls_begin_s "$(now_s)"
load_module versions_b
# Calls right after the load, as a user would make them. This shell has switched
# to versions_b when insmod returns, because it returned to user space since.
versions_call "$CALLS"
note calls "$CALLS"
note last_version "$(versions_last)"
tally_notes calls "$before"
wait_patched versions_b
note transition_done_s "$(now_s)"
# The tool reports calls once a second (--calls-interval 1): two seconds without
# calls let it report these before the next batch.
sleep 2
note calls_end_s "$(now_s)"

check_loaded check_loaded

if [ "$LAB_TOOL" = 1 ]; then
	wait_until 5 "a stacked-function finding in the tool's log" \
		tool_logged finding '"rule": *"stacked-function"' || true
	wait "$watcher"
fi

# The same calls again, seconds after the load.
before=$(tally_snapshot)
note settled_begin_s "$(now_s)"
versions_call "$CALLS"
tally_notes settled "$before"
sleep 2
note settled_end_s "$(now_s)"

stop_tool

disable_patch versions_b
disable_patch versions_a
unload_module versions_b
unload_module versions_a
unload_module versions_target
