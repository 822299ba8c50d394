// SPDX-License-Identifier: GPL-2.0
/*
 * Cumulative livepatch of versions_target: it replaces every other patch, and its versions_target_func() returns VERSIONS_CUMULATIVE.
 */

#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>

#include "versions.h"

/* Function names differ between the patches, so that each has its own kallsyms name. */
static int versions_cumulative_func(unsigned int arg)
{
	return VERSIONS_CUMULATIVE;
}

static int versions_cumulative_hold(struct versions_hold *mailbox)
{
	return versions_hold_serve(mailbox);
}

static struct klp_func funcs[] = {
	{
		.old_name = "versions_target_func",
		.new_func = versions_cumulative_func,
	}, {
		.old_name = "versions_target_hold",
		.new_func = versions_cumulative_hold,
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
	.replace = true,
};

static int versions_cumulative_init(void)
{
	return klp_enable_patch(&patch);
}

static void versions_cumulative_exit(void)
{
}

module_init(versions_cumulative_init);
module_exit(versions_cumulative_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("Cumulative livepatch of versions_target: it replaces every other patch, and its versions_target_func() returns VERSIONS_CUMULATIVE.");
