# Shell helpers of the replace-set scenarios (sets-*.sh), sourced after
# /lab/lib.sh. They need the replace-set kernel (`cargo xtask lab --kernel
# replace-set`), whose livepatches have /sys/kernel/livepatch/<patch>/replace_set.

# sysfs_value PATCH ATTRIBUTE: the attribute's content, or "missing".
sysfs_value() {
	cat "$LIVEPATCH_SYSFS/$1/$2" 2>/dev/null || echo missing
}

# note_proc NAME: records the first line of /proc/NAME as the note proc_NAME.
# The lab's livepatches make these files print the module name of the patch
# that serves them.
note_proc() {
	local line=
	read -r line < "/proc/$1"
	note "proc_$1" "$line"
}

# tool_listed_patches PATCH...: whether one inventory line of the tool's log
# lists every PATCH.
tool_listed_patches() {
	local lines patch
	lines=$(grep '"kind": *"inventory"' "$OUT/jsonl") || return 1
	for patch in "$@"; do
		lines=$(printf '%s\n' "$lines" | grep "\"name\": *\"$patch\"") || return 1
	done
}

# wait_tool_listed PATCH...: gives the tool up to 5 s to write an inventory
# that lists every PATCH, and records the wait as the note inventory_wait_ms.
# Does nothing without the tool.
wait_tool_listed() {
	[ "$LAB_TOOL" = 1 ] || return 0
	local waited
	waited=$(now_ms)
	wait_until 5 "an inventory that lists $* in the tool's log" tool_listed_patches "$@" || true
	note inventory_wait_ms $(($(now_ms) - waited))
}

# wait_tool_event KIND TEXT: gives the tool up to 5 s to log a KIND event whose
# line contains TEXT. Does nothing without the tool.
wait_tool_event() {
	[ "$LAB_TOOL" = 1 ] || return 0
	wait_until 5 "a $1 event with $2 in the tool's log" \
		sh -c "grep '\"kind\": *\"$1\"' '$OUT/jsonl' | grep -q -F '$2'" || true
}

# run_check NAME ARGS...: runs `livepatch-tui check ARGS...`, stores its output
# in $OUT/NAME and its exit code as the note NAME_exit.
run_check() {
	local name="$1" code=0
	shift
	echo "% livepatch-tui check $*"
	"$TOOL" check "$@" > "$OUT/$name" 2>&1 || code=$?
	cat "$OUT/$name"
	note "${name}_exit" "$code"
}

# try_load_module NAME: runs insmod on a module the kernel should reject. Stores
# insmod's message in $OUT/insmod-NAME and its exit code as the note
# insmod_NAME_exit, without failing the scenario.
try_load_module() {
	local code=0
	echo "% insmod $1.ko (expected to fail)"
	insmod "$MODULE_DIR/$1.ko" > "$OUT/insmod-$1" 2>&1 || code=$?
	cat "$OUT/insmod-$1"
	note "insmod_$1_exit" "$code"
}

# unload_lab_patches: disables the enabled livepatches one transition at a
# time, then unloads the lab_set* modules, so that the next scenario starts
# without them. /init's reset writes 0 to every patch's "enabled" at once, and
# the kernel rejects that write with EBUSY while another transition runs.
unload_lab_patches() {
	local patch module
	for patch in "$LIVEPATCH_SYSFS"/*; do
		[ -e "$patch/enabled" ] || continue
		if [ "$(cat "$patch/enabled")" = 1 ]; then
			disable_patch "${patch##*/}"
		fi
	done
	for module in /sys/module/lab_set*; do
		[ -d "$module" ] && unload_module "${module##*/}"
	done
	return 0
}
