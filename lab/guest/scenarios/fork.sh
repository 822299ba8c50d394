# Scenario "fork": tasks created during a transition take their parent's patch
# state (klp_copy_process() in Linux 6.1 copies patch_state and
# TIF_PATCH_PENDING from the parent).
#
# The transition of test_klp_callbacks_demo is held by the busy kworker. This
# shell has switched by then: a user task switches at the latest on its way
# back to user space (klp_update_patch_state() on kernel exit), and the shell
# runs in user space to fork. Its children therefore start patched and never
# need a check.
#
# NOTE: a child of a task that has not switched is not arranged here. A user
# task can only fork unswitched between the start of the transition and its
# next return to user space, a window of microseconds. Kernel threads are
# forked by kthreadd, which sleeps outside patched code and switches in the
# first pass. The tool writes no event for such a child until it switches.
set -eu
. /lab/lib.sh
trap cleanup EXIT

PATCH=test_klp_callbacks_demo
RELEASE=/sys/module/test_klp_callbacks_busy/parameters/block_transition
CHILD_COUNT=3
CHILDREN=
LATE_CHILD=

cleanup() {
	if [ -n "$CHILDREN$LATE_CHILD" ]; then
		kill $CHILDREN $LATE_CHILD 2>/dev/null || true
	fi
	stop_tool
}

start_tool

load_module test_klp_callbacks_busy block_transition=Y
load_module "$PATCH"
patch_transition_is "$PATCH" 1 || fail "transition of $PATCH is not in progress after loading it"
note parent_pid $$
note parent_state "$(cat /proc/$$/patch_state)"

for i in $(seq "$CHILD_COUNT"); do
	sleep 60 &
	CHILDREN="$CHILDREN $!"
done
note child_pids "$(echo $CHILDREN)"
states=
for pid in $CHILDREN; do
	states="$states $(cat /proc/$pid/patch_state)"
done
note child_states "$(echo $states)"
patch_transition_is "$PATCH" 1 && note forked_during_transition 1 || note forked_during_transition 0

note released_at_s "$(now_s)"
echo N > "$RELEASE"
wait_patched "$PATCH" 10

# A fork after the transition: the child's state is -1 and the tool reports nothing.
sleep 60 &
LATE_CHILD=$!
note late_child_pid "$LATE_CHILD"
note late_child_state "$(cat /proc/$LATE_CHILD/patch_state)"

kill $CHILDREN $LATE_CHILD
wait $CHILDREN $LATE_CHILD 2>/dev/null || true
CHILDREN=
LATE_CHILD=

disable_patch "$PATCH"
unload_module "$PATCH"
unload_module test_klp_callbacks_busy

stop_tool
