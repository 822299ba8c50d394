// SPDX-License-Identifier: GPL-2.0
/*
 * Livepatch in replace set 1 that replaces lab_set1_v1: it replaces only
 * cmdline_proc_show(), so the kernel's nop function takes loadavg_proc_show()
 * back to the original, and it takes over state LAB_STATE_SET1 as version 2.
 */

#include "replace_set.h"

static int lab_set1_v2_cmdline_show(struct seq_file *m, void *v)
{
	return lab_show_patch_name(m);
}

static struct klp_func funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = lab_set1_v2_cmdline_show,
	},
	{ }
};

static struct klp_object objs[] = {
	{
		/* An object without a name is vmlinux. */
		.funcs = funcs,
	}, { }
};

static struct klp_state states[] = {
	{
		.id = LAB_STATE_SET1,
		.version = 2,
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
	.states = states,
	.replace_set = 1,
};

static int lab_set1_v2_init(void)
{
	return klp_enable_patch(&patch);
}

static void lab_set1_v2_exit(void)
{
}

module_init(lab_set1_v2_init);
module_exit(lab_set1_v2_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("Replace set 1, version 2: /proc/cmdline only");
