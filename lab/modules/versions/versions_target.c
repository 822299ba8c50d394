// SPDX-License-Identifier: GPL-2.0
/*
 * A livepatch target whose patched function runs on demand, through files in
 * /sys/kernel/debug/versions_target/:
 *
 *   call          write N: call versions_target_func() N times from the writer
 *   tick          each read() calls it once and returns one byte, the digit of
 *                 the version that ran (a syscall-bound loop: dd bs=1)
 *   bench         write N: N calls in a tight loop; read: "calls=N ns=T", T
 *                 measured with ktime around the loop
 *   hold          write: the writer sleeps in versions_target_hold() until
 *                 released, and so blocks the transition of a patch that
 *                 replaces it
 *   hold_call     write N: the holding task calls versions_target_func() N
 *                 times, and the write returns when the calls are done
 *   hold_release  write: the holding task returns
 *   tally         read: "vV=COUNT" per version, calls since load that ran V
 *   last          read: the version of the latest call
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/uaccess.h>

#include "versions.h"

/* How long a command waits for the holding task. */
#define HOLD_COMMAND_TIMEOUT (30 * HZ)

static atomic_long_t tally[VERSIONS_COUNT];
/* Calls that returned a version outside the known range. */
static atomic_long_t tally_unknown;
static atomic_t last_version = ATOMIC_INIT(-1);

static u64 bench_calls;
static u64 bench_ns;
static DEFINE_MUTEX(bench_lock);

static struct versions_hold hold;
static atomic_t holding = ATOMIC_INIT(0);
/* One command at a time for the holding task. */
static DEFINE_MUTEX(hold_command_lock);

static struct dentry *debugfs_dir;

/*
 * The function the livepatches replace. __noipa keeps the compiler from
 * inlining it, cloning it or propagating its constant result into callers,
 * any of which would bypass the livepatch.
 */
noinline __noipa int versions_target_func(unsigned int arg)
{
	return VERSIONS_ORIGINAL;
}

/* The function a holding task sleeps in; the livepatches replace it too. */
noinline __noipa int versions_target_hold(struct versions_hold *mailbox)
{
	return versions_hold_serve(mailbox);
}

static void record(int version)
{
	if (version >= 0 && version < VERSIONS_COUNT)
		atomic_long_inc(&tally[version]);
	else
		atomic_long_inc(&tally_unknown);
	atomic_set(&last_version, version);
}

static void call_times(unsigned int count)
{
	unsigned int i;

	for (i = 0; i < count; i++)
		record(versions_target_func(i));
}

static int parse_count(const char __user *buf, size_t len, unsigned int *count)
{
	return kstrtouint_from_user(buf, len, 0, count);
}

static ssize_t call_write(struct file *file, const char __user *buf, size_t len,
			  loff_t *ppos)
{
	unsigned int count;
	int ret = parse_count(buf, len, &count);

	if (ret)
		return ret;
	call_times(count);
	return len;
}

static ssize_t tick_read(struct file *file, char __user *buf, size_t len,
			 loff_t *ppos)
{
	int version = versions_target_func(0);
	char digit;

	record(version);
	if (!len)
		return 0;
	digit = version >= 0 && version <= 9 ? '0' + version : '?';
	if (put_user(digit, buf))
		return -EFAULT;
	return 1;
}

static ssize_t bench_write(struct file *file, const char __user *buf,
			   size_t len, loff_t *ppos)
{
	unsigned int count;
	ktime_t started;
	int ret = parse_count(buf, len, &count);

	if (ret)
		return ret;
	mutex_lock(&bench_lock);
	started = ktime_get();
	call_times(count);
	bench_ns = ktime_to_ns(ktime_sub(ktime_get(), started));
	bench_calls = count;
	mutex_unlock(&bench_lock);
	return len;
}

static ssize_t bench_read(struct file *file, char __user *buf, size_t len,
			  loff_t *ppos)
{
	char text[64];
	int size;

	mutex_lock(&bench_lock);
	size = scnprintf(text, sizeof(text), "calls=%llu ns=%llu\n", bench_calls,
			 bench_ns);
	mutex_unlock(&bench_lock);
	return simple_read_from_buffer(buf, len, ppos, text, size);
}

static ssize_t hold_write(struct file *file, const char __user *buf, size_t len,
			  loff_t *ppos)
{
	int ret;

	if (atomic_cmpxchg(&holding, 0, 1) != 0)
		return -EBUSY;
	WRITE_ONCE(hold.command, VERSIONS_HOLD_IDLE);
	ret = versions_target_hold(&hold);
	atomic_set(&holding, 0);
	return ret ? ret : len;
}

/* Sends a command to the holding task and waits until it has carried it out. */
static int send_hold_command(int command, unsigned int calls)
{
	int ret = 0;

	if (!atomic_read(&holding))
		return -ENOENT;
	mutex_lock(&hold_command_lock);
	reinit_completion(&hold.done);
	hold.calls = calls;
	WRITE_ONCE(hold.command, command);
	wake_up_interruptible(&hold.wait);
	if (!wait_for_completion_timeout(&hold.done, HOLD_COMMAND_TIMEOUT))
		ret = -ETIMEDOUT;
	mutex_unlock(&hold_command_lock);
	return ret;
}

static ssize_t hold_call_write(struct file *file, const char __user *buf,
			       size_t len, loff_t *ppos)
{
	unsigned int count;
	int ret = parse_count(buf, len, &count);

	if (ret)
		return ret;
	ret = send_hold_command(VERSIONS_HOLD_CALL, count);
	return ret ? ret : len;
}

static ssize_t hold_release_write(struct file *file, const char __user *buf,
				  size_t len, loff_t *ppos)
{
	int ret = send_hold_command(VERSIONS_HOLD_RELEASE, 0);

	return ret ? ret : len;
}

static ssize_t tally_read(struct file *file, char __user *buf, size_t len,
			  loff_t *ppos)
{
	char text[256];
	int size = 0;
	int version;

	for (version = 0; version < VERSIONS_COUNT; version++)
		size += scnprintf(text + size, sizeof(text) - size, "v%d=%ld\n",
				  version, atomic_long_read(&tally[version]));
	size += scnprintf(text + size, sizeof(text) - size, "unknown=%ld\n",
			  atomic_long_read(&tally_unknown));
	return simple_read_from_buffer(buf, len, ppos, text, size);
}

static ssize_t last_read(struct file *file, char __user *buf, size_t len,
			 loff_t *ppos)
{
	char text[16];
	int size = scnprintf(text, sizeof(text), "%d\n",
			     atomic_read(&last_version));

	return simple_read_from_buffer(buf, len, ppos, text, size);
}

static const struct file_operations call_fops = {
	.owner = THIS_MODULE,
	.write = call_write,
};

static const struct file_operations tick_fops = {
	.owner = THIS_MODULE,
	.read = tick_read,
};

static const struct file_operations bench_fops = {
	.owner = THIS_MODULE,
	.read = bench_read,
	.write = bench_write,
};

static const struct file_operations hold_fops = {
	.owner = THIS_MODULE,
	.write = hold_write,
};

static const struct file_operations hold_call_fops = {
	.owner = THIS_MODULE,
	.write = hold_call_write,
};

static const struct file_operations hold_release_fops = {
	.owner = THIS_MODULE,
	.write = hold_release_write,
};

static const struct file_operations tally_fops = {
	.owner = THIS_MODULE,
	.read = tally_read,
};

static const struct file_operations last_fops = {
	.owner = THIS_MODULE,
	.read = last_read,
};

static int __init versions_target_init(void)
{
	init_waitqueue_head(&hold.wait);
	init_completion(&hold.done);
	hold.call = call_times;

	debugfs_dir = debugfs_create_dir(KBUILD_MODNAME, NULL);
	debugfs_create_file("call", 0200, debugfs_dir, NULL, &call_fops);
	debugfs_create_file("tick", 0444, debugfs_dir, NULL, &tick_fops);
	debugfs_create_file("bench", 0600, debugfs_dir, NULL, &bench_fops);
	debugfs_create_file("hold", 0200, debugfs_dir, NULL, &hold_fops);
	debugfs_create_file("hold_call", 0200, debugfs_dir, NULL, &hold_call_fops);
	debugfs_create_file("hold_release", 0200, debugfs_dir, NULL,
			    &hold_release_fops);
	debugfs_create_file("tally", 0444, debugfs_dir, NULL, &tally_fops);
	debugfs_create_file("last", 0444, debugfs_dir, NULL, &last_fops);
	return 0;
}

static void __exit versions_target_exit(void)
{
	debugfs_remove_recursive(debugfs_dir);
}

module_init(versions_target_init);
module_exit(versions_target_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Livepatch target whose patched function runs on demand");
