# Scenario "kthread": a kernel thread of our own module sleeps inside the
# patched function and holds the transition over several retries.
#
# lab_kthread_target.ko starts the thread "lab_kthread", which stays inside
# lab_hold() while the module parameter hold is Y. lab_kthread_patch.ko patches
# lab_hold(). insmod makes the first pass; every later pass comes from the
# kernel's retry work (klp_transition_work_fn(), about once a second), so this
# transition can only complete through that work.
set -eu
. /lab/lib.sh
trap stop_tool EXIT

PATCH=lab_kthread_patch
HOLD=/sys/module/lab_kthread_target/parameters/hold
MARKER="lab: kthread: patch loaded"
HELD_CHECKS=3

# Whether the tool has reported the thread in lab_hold() at HELD_CHECKS checks.
tool_saw_held_checks() {
	tool_logged task_blocked '"comm": *"lab_kthread"' '"function": *"lab_hold"' \
		"\"attempts\": *([$HELD_CHECKS-9]|[1-9][0-9])"
}

start_tool

load_module lab_kthread_target
wait_until 5 "lab_kthread to start" grep -q lab_kthread /proc/[0-9]*/comm ||
	fail "the thread lab_kthread did not start"
note thread_pid "$(grep -l '^lab_kthread$' /proc/[0-9]*/comm | cut -d/ -f3)"

kmsg "kthread: patch loaded"
load_module "$PATCH"
patch_transition_is "$PATCH" 1 || fail "transition of $PATCH is not in progress after loading it"

wait_until 15 "$HELD_CHECKS kernel checks of lab_kthread in lab_hold" \
	dmesg_count_at_least "$HELD_CHECKS" "$MARKER" "is sleeping on function lab_hold" ||
	fail "the kernel did not report lab_kthread in lab_hold $HELD_CHECKS times"
if [ "$LAB_TOOL" = 1 ]; then
	wait_until 10 "a task_blocked event with attempts >= $HELD_CHECKS" tool_saw_held_checks ||
		echo "releasing without the tool's report of $HELD_CHECKS checks" >&2
fi
note held_checks "$(dmesg_count_since "$MARKER" "is sleeping on function lab_hold")"
patch_transition_is "$PATCH" 1 && note transition_during_hold 1 || note transition_during_hold 0

note released_at_s "$(now_s)"
released=$(now_ms)
kmsg "releasing lab_hold"
echo N > "$HOLD"
wait_patched "$PATCH" 10
note release_to_patched_ms $(($(now_ms) - released))

disable_patch "$PATCH"
unload_module "$PATCH"
unload_module lab_kthread_target

stop_tool
