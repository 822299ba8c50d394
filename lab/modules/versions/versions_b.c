// SPDX-License-Identifier: GPL-2.0
/*
 * Livepatch of versions_target that stacks: its versions_target_func() returns VERSIONS_B.
 */

#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>

#include "versions.h"

/* Function names differ between the patches, so that each has its own kallsyms name. */
static int versions_b_func(unsigned int arg)
{
	return VERSIONS_B;
}

static int versions_b_hold(struct versions_hold *mailbox)
{
	return versions_hold_serve(mailbox);
}

static struct klp_func funcs[] = {
	{
		.old_name = "versions_target_func",
		.new_func = versions_b_func,
	}, {
		.old_name = "versions_target_hold",
		.new_func = versions_b_hold,
	}, { }
};

static struct klp_object objs[] = {
	{
		.name = "versions_target",
		.funcs = funcs,
	}, { }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
	.replace = false,
};

static int versions_b_init(void)
{
	return klp_enable_patch(&patch);
}

static void versions_b_exit(void)
{
}

module_init(versions_b_init);
module_exit(versions_b_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("Livepatch of versions_target that stacks: its versions_target_func() returns VERSIONS_B.");
