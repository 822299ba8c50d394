// SPDX-License-Identifier: GPL-2.0
/*
 * Livepatch of lab_hold() in lab_kthread_target.
 *
 * The replacement behaves like the original, under its own parameter "hold"
 * (default: N). Setting it once the patch is applied keeps the thread inside
 * the replacement, which blocks a transition back to unpatched.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/livepatch.h>
#include <linux/module.h>

static bool hold;
module_param(hold, bool, 0644);
MODULE_PARM_DESC(hold, "keep the thread inside the replacement of lab_hold() (default: N)");

static void livepatch_lab_hold(void)
{
	while (READ_ONCE(hold) && !kthread_should_stop())
		msleep_interruptible(100);
}

static struct klp_func funcs[] = {
	{
		.old_name = "lab_hold",
		.new_func = livepatch_lab_hold,
	},
	{}
};

static struct klp_object objs[] = {
	{
		.name = "lab_kthread_target",
		.funcs = funcs,
	},
	{}
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

/*
 * Not __init: the kernel keeps every symbol of a livepatch module in kallsyms
 * (layout_symtab() in kernel/module/kallsyms.c, Linux 6.1), init functions
 * too, after their memory is freed and reused by modules loaded later.
 * lab_force_patch.ko stays loaded until poweroff, so a stale symbol there
 * would name code of later scenarios' modules.
 */
static int lab_kthread_patch_init(void)
{
	return klp_enable_patch(&patch);
}

static void lab_kthread_patch_exit(void)
{
}

module_init(lab_kthread_patch_init);
module_exit(lab_kthread_patch_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("Lab livepatch of lab_hold()");
