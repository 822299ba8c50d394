# Shell helpers for the scenarios that drive lab/modules/versions: the target
# versions_target.ko, whose versions_target_func() returns the version of the code
# that ran (0 original, 1 versions_a, 2 versions_b, 3 versions_cumulative), and its
# livepatches. Sourced after /lab/lib.sh.

VERSIONS_DEBUGFS=/sys/kernel/debug/versions_target
HOLDER_PID=

# versions_call COUNT: calls versions_target_func() COUNT times from this shell.
versions_call() {
	echo "$1" > "$VERSIONS_DEBUGFS/call"
}

# versions_tally VERSION: calls that ran VERSION since the target was loaded.
versions_tally() {
	sed -n "s/^v$1=//p" "$VERSIONS_DEBUGFS/tally"
}

# versions_last: the version of the latest call.
versions_last() {
	cat "$VERSIONS_DEBUGFS/last"
}

# tally_snapshot: the four tallies as one line, for tally_notes.
tally_snapshot() {
	echo "$(versions_tally 0) $(versions_tally 1) $(versions_tally 2) $(versions_tally 3)"
}

# tally_notes PREFIX BEFORE: notes PREFIX_vN, the calls per version since the
# snapshot BEFORE.
tally_notes() {
	local prefix="$1" version=0 before now
	set -- $2
	for now in $(tally_snapshot); do
		before="$1"
		shift
		note "${prefix}_v$version" $((now - before))
		version=$((version + 1))
	done
}

# holder_sleeping: whether the holding task sleeps in versions_target_hold() or a
# replacement of it (named versions_*_hold).
holder_sleeping() {
	[ -n "$HOLDER_PID" ] && grep -q 'versions_.*_hold' "/proc/$HOLDER_PID/stack" 2>/dev/null
}

# hold_start: starts a task that writes to the hold file and so sleeps in the
# current version of versions_target_hold() until hold_release.
hold_start() {
	sh -c "echo 1 > $VERSIONS_DEBUGFS/hold" &
	HOLDER_PID=$!
	wait_until 10 "the holding task to sleep in versions_target_hold" holder_sleeping ||
		fail "the holding task (pid $HOLDER_PID) is not sleeping in versions_target_hold"
	echo "holding task: pid $HOLDER_PID"
}

# hold_call COUNT: the holding task calls versions_target_func() COUNT times.
hold_call() {
	echo "$1" > "$VERSIONS_DEBUGFS/hold_call" || fail "the holding task did not make $1 calls"
}

# hold_release: lets the holding task return to user space, and waits for it.
hold_release() {
	[ -n "$HOLDER_PID" ] || return 0
	echo 1 > "$VERSIONS_DEBUGFS/hold_release" 2>/dev/null
	wait "$HOLDER_PID" || true
	HOLDER_PID=
}

# task_patch_state PID: /proc/PID/patch_state (-1 no transition, 0 unpatched,
# 1 patched).
task_patch_state() {
	cat "/proc/$1/patch_state"
}

# check_module NAME FILE [OPTION...]: runs `livepatch-tui check --module` on NAME.ko
# with OPTIONs, without loading it, writes its JSON verdict to $OUT/FILE and notes
# its exit code as FILE_exit.
check_module() {
	local module="$1" file="$2" code=0
	shift 2
	"$TOOL" check --format json --module "$MODULE_DIR/$module.ko" "$@" > "$OUT/$file" 2> "$OUT/$file-stderr" || code=$?
	note "${file}_exit" "$code"
	cat "$OUT/$file"
}

# check_loaded FILE: runs `livepatch-tui check --format json` on the loaded patches,
# writes its output to $OUT/FILE and notes its exit code as FILE_exit.
check_loaded() {
	local code=0
	"$TOOL" check --format json > "$OUT/$1" 2> "$OUT/$1-stderr" || code=$?
	note "${1}_exit" "$code"
	cat "$OUT/$1"
}

KPROBE_LIST=/sys/kernel/debug/kprobes/list

# kprobe_on SYMBOL: whether a kprobe sits on the entry of SYMBOL. The tool's call
# counters are kprobes, so this shows when it has started counting a function.
kprobe_on() {
	grep -q " $1+0x0" "$KPROBE_LIST" 2>/dev/null
}

# wait_counting NAME SYMBOL...: waits up to 20 s until a kprobe sits on each SYMBOL,
# and notes NAME_counting_ms, the wait, or "none" when a kprobe never came.
wait_counting() {
	local name="$1" started symbol
	shift
	[ "$LAB_TOOL" = 1 ] || return 0
	started=$(now_ms)
	for symbol in "$@"; do
		if ! wait_until 20 "the tool's counter on $symbol" kprobe_on "$symbol"; then
			note "${name}_counting_ms" none
			return 0
		fi
	done
	note "${name}_counting_ms" $(($(now_ms) - started))
}
