// SPDX-License-Identifier: GPL-2.0
/*
 * Livepatch in replace set 1: replaces cmdline_proc_show() and
 * loadavg_proc_show(), and modifies state LAB_STATE_SET1 version 1.
 */

#include "replace_set.h"

static int lab_set1_v1_cmdline_show(struct seq_file *m, void *v)
{
	return lab_show_patch_name(m);
}

static int lab_set1_v1_loadavg_show(struct seq_file *m, void *v)
{
	return lab_show_patch_name(m);
}

static struct klp_func funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = lab_set1_v1_cmdline_show,
	},
	{
		.old_name = "loadavg_proc_show",
		.new_func = lab_set1_v1_loadavg_show,
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
		.version = 1,
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
	.states = states,
	.replace_set = 1,
};

static int lab_set1_v1_init(void)
{
	return klp_enable_patch(&patch);
}

static void lab_set1_v1_exit(void)
{
}

module_init(lab_set1_v1_init);
module_exit(lab_set1_v1_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("Replace set 1, version 1: /proc/cmdline and /proc/loadavg");
