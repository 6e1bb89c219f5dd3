// SPDX-License-Identifier: GPL-2.0
/*
 * cnasio_echo - a connector peer that answers requests the way
 * Documentation/driver-api/connector.rst asks (same seq, ack + 1, unicast to
 * the sender), plus multicast events, so that user-space connector clients
 * can be tested against a real kernel. The protocol is documented in
 * cnasio_echo_proto.h.
 *
 * Kernel API spread (5.10 .. 6.6+): cn_add_callback/cn_del_callback take a
 * `struct cb_id *` on 5.10 and a `const struct cb_id *` from 6.1 - a mutable
 * cb_id suits both. cn_netlink_send_mult gained filter arguments in 6.6;
 * this module only uses cn_netlink_send, whose signature has not changed.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/connector.h>
#include <linux/delay.h>
#include <linux/errno.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/workqueue.h>

#include "cnasio_echo_proto.h"

static unsigned int idx = CNASIO_ECHO_DEFAULT_IDX;
module_param(idx, uint, 0444);
MODULE_PARM_DESC(idx, "connector idx, also the multicast group (11..26, default 14)");

static unsigned int val = CNASIO_ECHO_DEFAULT_VAL;
module_param(val, uint, 0444);
MODULE_PARM_DESC(val, "connector val (default 1)");

static unsigned int period_ms;
module_param(period_ms, uint, 0444);
MODULE_PARM_DESC(period_ms, "multicast a tick event every period_ms ms (0 = off, the default)");

static struct cb_id echo_id;

/* Callbacks that have started and not yet returned (see echo_exit). */
static atomic_t callbacks_running = ATOMIC_INIT(0);

static atomic64_t stat_requests = ATOMIC64_INIT(0);
static atomic64_t stat_replies = ATOMIC64_INIT(0);
static atomic64_t stat_replies_dropped = ATOMIC64_INIT(0);
static atomic64_t stat_events = ATOMIC64_INIT(0);
static atomic64_t stat_events_dropped = ATOMIC64_INIT(0);

/* Numbers NOTIFY/TICK events and bursts across the module's lifetime. */
static atomic_t event_counter = ATOMIC_INIT(0);
static atomic_t burst_counter = ATOMIC_INIT(0);

/*
 * Sends never block: with a blocking gfp mask the connector waits for room
 * in a full receiver, which would stall the requester inside its own
 * sendto() - a single-threaded client that has not yet read its earlier
 * replies would then hang forever. Dropping is what a slow reader gets.
 */
#define ECHO_SEND_GFP GFP_ATOMIC

/* Builds a cn_msg with `head` (head_len bytes) then `data` as its payload. */
static struct cn_msg *echo_msg_alloc(u32 seq, u32 ack, const void *head, size_t head_len,
				     const void *data, size_t data_len)
{
	struct cn_msg *msg = kzalloc(sizeof(*msg) + head_len + data_len, GFP_KERNEL);

	if (!msg)
		return NULL;
	msg->id = echo_id;
	msg->seq = seq;
	msg->ack = ack;
	msg->len = (u16)(head_len + data_len);
	memcpy(msg->data, head, head_len);
	if (data_len)
		memcpy(msg->data + head_len, data, data_len);
	return msg;
}

static void echo_reply(u32 portid, u32 seq, u32 ack, s32 err, u32 arg,
		       const void *data, size_t data_len)
{
	struct cnasio_echo_reply head = { .err = err, .arg = arg };
	struct cn_msg *msg;
	int ret;

	/* Port 0 is the kernel itself: nobody to answer. */
	if (!portid)
		return;
	msg = echo_msg_alloc(seq, ack + 1, &head, sizeof(head), data, data_len);
	if (!msg) {
		atomic64_inc(&stat_replies_dropped);
		return;
	}
	/* Group 0 + a port id = unicast to that port (connector.rst). */
	ret = cn_netlink_send(msg, portid, 0, ECHO_SEND_GFP);
	if (ret < 0)
		atomic64_inc(&stat_replies_dropped);
	else
		atomic64_inc(&stat_replies);
	kfree(msg);
}

/* Multicasts one event to the idx group; true if some listener took it. */
static bool echo_multicast(u32 seq, const struct cnasio_echo_event *ev,
			   const void *data, size_t data_len)
{
	struct cn_msg *msg = echo_msg_alloc(seq, 0, ev, sizeof(*ev), data, data_len);
	int ret;

	if (!msg) {
		atomic64_inc(&stat_events_dropped);
		return false;
	}
	/* -ESRCH: no listener; -ENOBUFS: some listener's buffer was full. */
	ret = cn_netlink_send(msg, 0, echo_id.idx, ECHO_SEND_GFP);
	kfree(msg);
	if (ret < 0) {
		atomic64_inc(&stat_events_dropped);
		return false;
	}
	atomic64_inc(&stat_events);
	return true;
}

/* ---- DELAY: replies sent later from a workqueue ---- */

struct echo_delayed {
	struct delayed_work work;
	struct list_head node;  /* on delayed_list while nobody has claimed it */
	u32 portid, seq, ack, ms;
	size_t data_len;
	u8 data[];
};

static LIST_HEAD(delayed_list);
static DEFINE_SPINLOCK(delayed_lock);
static unsigned int delayed_count;

/*
 * Whoever takes an item off delayed_list owns it: the work function when it
 * runs normally, echo_exit when it cancels. The loser never touches it again.
 */
static bool echo_delayed_claim(struct echo_delayed *d)
{
	bool claimed = false;

	spin_lock_bh(&delayed_lock);
	if (!list_empty(&d->node)) {
		list_del_init(&d->node);
		delayed_count--;
		claimed = true;
	}
	spin_unlock_bh(&delayed_lock);
	return claimed;
}

static void echo_delayed_fn(struct work_struct *work)
{
	struct echo_delayed *d = container_of(to_delayed_work(work), struct echo_delayed, work);

	if (!echo_delayed_claim(d))
		return;
	echo_reply(d->portid, d->seq, d->ack, 0, d->ms, d->data, d->data_len);
	kfree(d);
}

static s32 echo_delay(u32 portid, const struct cn_msg *msg, u32 ms,
		      const u8 *data, size_t data_len)
{
	struct echo_delayed *d;

	if (ms > CNASIO_ECHO_MAX_DELAY_MS)
		return ERANGE;
	d = kzalloc(sizeof(*d) + data_len, GFP_KERNEL);
	if (!d)
		return ENOMEM;
	INIT_DELAYED_WORK(&d->work, echo_delayed_fn);
	INIT_LIST_HEAD(&d->node);
	d->portid = portid;
	d->seq = msg->seq;
	d->ack = msg->ack;
	d->ms = ms;
	d->data_len = data_len;
	memcpy(d->data, data, data_len);

	spin_lock_bh(&delayed_lock);
	if (delayed_count >= CNASIO_ECHO_MAX_PENDING) {
		spin_unlock_bh(&delayed_lock);
		kfree(d);
		return EBUSY;
	}
	list_add_tail(&d->node, &delayed_list);
	delayed_count++;
	/* Queued under the lock so that echo_exit never sees an unqueued item. */
	schedule_delayed_work(&d->work, msecs_to_jiffies(ms));
	spin_unlock_bh(&delayed_lock);
	return 0;
}

static void echo_cancel_delayed(void)
{
	for (;;) {
		struct echo_delayed *d;

		spin_lock_bh(&delayed_lock);
		d = list_first_entry_or_null(&delayed_list, struct echo_delayed, node);
		if (d) {
			list_del_init(&d->node);
			delayed_count--;
		}
		spin_unlock_bh(&delayed_lock);
		if (!d)
			return;
		/* A running work function finds d claimed and returns; wait for that. */
		cancel_delayed_work_sync(&d->work);
		kfree(d);
	}
}

/* ---- requests ---- */

static void echo_stats(u32 portid, const struct cn_msg *msg)
{
	struct cnasio_echo_stats st = {
		.requests = (u64)atomic64_read(&stat_requests),
		.replies = (u64)atomic64_read(&stat_replies),
		.replies_dropped = (u64)atomic64_read(&stat_replies_dropped),
		.events = (u64)atomic64_read(&stat_events),
		.events_dropped = (u64)atomic64_read(&stat_events_dropped),
	};

	spin_lock_bh(&delayed_lock);
	st.delays_pending = delayed_count;
	spin_unlock_bh(&delayed_lock);
	echo_reply(portid, msg->seq, msg->ack, 0, 0, &st, sizeof(st));
}

static void echo_handle(struct cn_msg *msg, u32 portid)
{
	struct cnasio_echo_request req;
	const u8 *data;
	size_t data_len;
	s32 err = 0;
	u32 i;

	/* The connector has checked that msg->len bytes lie inside the skb. */
	if (msg->len < sizeof(req)) {
		echo_reply(portid, msg->seq, msg->ack, EBADMSG, 0, NULL, 0);
		return;
	}
	/* Copied, not cast: the payload has no alignment promise. */
	memcpy(&req, msg->data, sizeof(req));
	data = msg->data + sizeof(req);
	data_len = msg->len - sizeof(req);
	if (data_len > CNASIO_ECHO_MAX_DATA) {
		echo_reply(portid, msg->seq, msg->ack, EMSGSIZE, req.cmd, NULL, 0);
		return;
	}

	switch (req.cmd) {
	case CNASIO_ECHO_CMD_ECHO:
		echo_reply(portid, msg->seq, msg->ack, 0, (u32)data_len, data, data_len);
		return;
	case CNASIO_ECHO_CMD_NOTIFY: {
		struct cnasio_echo_event ev = {
			.kind = CNASIO_ECHO_EVENT_NOTIFY,
			.index = (u32)atomic_inc_return(&event_counter),
		};
		bool delivered = echo_multicast(ev.index, &ev, data, data_len);

		echo_reply(portid, msg->seq, msg->ack, 0, delivered, NULL, 0);
		return;
	}
	case CNASIO_ECHO_CMD_BURST: {
		struct cnasio_echo_event ev = {
			.kind = CNASIO_ECHO_EVENT_BURST,
			.count = req.arg,
			.burst = (u32)atomic_inc_return(&burst_counter),
		};
		u32 delivered = 0;

		if (req.arg > CNASIO_ECHO_MAX_BURST) {
			err = ERANGE;
			break;
		}
		for (i = 0; i < req.arg; i++) {
			ev.index = i;
			delivered += echo_multicast(i, &ev, NULL, 0);
			/* A large burst runs in the requester's syscall: stay preemptible. */
			cond_resched();
		}
		echo_reply(portid, msg->seq, msg->ack, 0, delivered, NULL, 0);
		return;
	}
	case CNASIO_ECHO_CMD_DELAY:
		err = echo_delay(portid, msg, req.arg, data, data_len);
		if (err)
			break;
		return;
	case CNASIO_ECHO_CMD_STATS:
		echo_stats(portid, msg);
		return;
	default:
		err = EINVAL;
		break;
	}
	echo_reply(portid, msg->seq, msg->ack, err, req.cmd, NULL, 0);
}

static void echo_callback(struct cn_msg *msg, struct netlink_skb_parms *nsp)
{
	atomic_inc(&callbacks_running);
	atomic64_inc(&stat_requests);
	/* nsp->portid is the true sender; nlmsg_pid is whatever it wrote. */
	echo_handle(msg, nsp->portid);
	atomic_dec(&callbacks_running);
}

/* ---- optional periodic multicast ---- */

static void echo_tick_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(tick_work, echo_tick_fn);

static void echo_tick_fn(struct work_struct *work)
{
	struct cnasio_echo_event ev = {
		.kind = CNASIO_ECHO_EVENT_TICK,
		.index = (u32)atomic_inc_return(&event_counter),
	};

	echo_multicast(ev.index, &ev, NULL, 0);
	schedule_delayed_work(&tick_work, msecs_to_jiffies(period_ms));
}

/* ---- load / unload ---- */

static int __init echo_init(void)
{
	int err;

	if (idx < CNASIO_ECHO_MIN_IDX || idx > CNASIO_ECHO_MAX_IDX) {
		pr_err("idx %u outside %u..%u (it must also be a valid multicast group)\n",
		       idx, CNASIO_ECHO_MIN_IDX, CNASIO_ECHO_MAX_IDX);
		return -EINVAL;
	}
	echo_id.idx = idx;
	echo_id.val = val;
	/* A non-const cb_id: 5.10 takes `struct cb_id *`, 6.1+ `const struct cb_id *`. */
	err = cn_add_callback(&echo_id, "cnasio_echo", echo_callback);
	if (err) {
		pr_err("cn_add_callback {%u,%u} failed: %d\n", idx, val, err);
		return err;
	}
	if (period_ms)
		schedule_delayed_work(&tick_work, msecs_to_jiffies(period_ms));
	pr_info("registered connector id {%u,%u}%s\n", idx, val,
		period_ms ? ", periodic multicast on" : "");
	return 0;
}

static void __exit echo_exit(void)
{
	cancel_delayed_work_sync(&tick_work);
	/* No new callbacks start after this returns... */
	cn_del_callback(&echo_id);
	/*
	 * ...but the connector does not wait for ones already running (it only
	 * drops its reference to the callback entry), and they may queue
	 * delayed replies. Wait for them before cancelling those replies.
	 * (A callback the connector has looked up but not yet entered is not
	 * counted: that window of a few instructions is the connector's own,
	 * shared by every connector module.)
	 */
	while (atomic_read(&callbacks_running))
		msleep(1);
	echo_cancel_delayed();
	pr_info("unregistered connector id {%u,%u}\n", idx, val);
}

module_init(echo_init);
module_exit(echo_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Connector echo peer for testing connector clients (cnasio)");
MODULE_AUTHOR("cnasio contributors");
