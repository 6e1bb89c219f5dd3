/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSL-1.0 */
/*
 * cnasio_echo_proto.h - the wire protocol of the cnasio_echo kernel module.
 *
 * Shared by the module (kernel C), by user-space callers in C, and by C++
 * programs (including ones built with -Wpedantic: no flexible array members,
 * only fixed-width fields, no kernel-only headers).
 *
 * Transport
 * ---------
 * A NETLINK_CONNECTOR socket sends one struct cn_msg to the module's
 * connector id {idx, val} (module parameters; defaults below). The cn_msg
 * payload (cn_msg.len bytes) is a struct cnasio_echo_request followed by
 * cn_msg.len - sizeof(struct cnasio_echo_request) data bytes.
 *
 * Every request that names a sender port id gets exactly one reply, sent by
 * unicast to that port id (the one recvfrom() reports for the request, not
 * whatever nlmsg_pid the sender wrote):
 *   reply.id  == request.id
 *   reply.seq == request.seq
 *   reply.ack == request.ack + 1 (wraps at 2^32)
 * The reply payload is a struct cnasio_echo_reply followed by data bytes.
 * reply.err is 0 or a POSITIVE errno value (EINVAL, not -EINVAL), so user
 * space can turn it into std::error_code(err, std::generic_category()).
 * A reply that cannot be queued (the requester's receive buffer is full)
 * is dropped: the module never blocks on a slow reader.
 *
 * Multicast events go to the netlink group numbered like the connector idx
 * (a socket joins it with NETLINK_ADD_MEMBERSHIP, idx). Their payload is a
 * struct cnasio_echo_event followed by data bytes; cn_msg.ack is 0 and
 * cn_msg.seq is the event's index (burst) or a module-wide counter.
 *
 * Byte order: host order, as in struct cn_msg itself - the connector never
 * leaves the machine, so both ends always share the CPU's byte order.
 *
 * Commands (request.cmd)           reply.arg                reply data
 *   ECHO    data                   data length              the data
 *   NOTIFY  data  -> 1 event       1 if a listener got it   none
 *   BURST   arg = N -> N events    events delivered         none
 *   DELAY   arg = ms, data         ms                       the data, late
 *   STATS                          0                        struct cnasio_echo_stats
 *
 * Error replies (reply.err; reply.arg is the request's cmd, no data):
 *   EBADMSG   payload shorter than struct cnasio_echo_request (truncated)
 *   EMSGSIZE  more than CNASIO_ECHO_MAX_DATA data bytes (oversized)
 *   EINVAL    unknown cmd
 *   ERANGE    BURST arg > CNASIO_ECHO_MAX_BURST, DELAY arg > CNASIO_ECHO_MAX_DELAY_MS
 *   EBUSY     DELAY while CNASIO_ECHO_MAX_PENDING delayed replies are queued
 *
 * Module parameters: idx, val (connector id), period_ms (0 = off; otherwise a
 * CNASIO_ECHO_EVENT_TICK is multicast every period_ms milliseconds).
 */
#ifndef CNASIO_ECHO_PROTO_H
#define CNASIO_ECHO_PROTO_H

#include <linux/types.h>

/* CN_NETLINK_USERS (11) + 3: in the range a connector idx must stay in to
 * double as a netlink multicast group (1..26). */
#define CNASIO_ECHO_DEFAULT_IDX 14u
#define CNASIO_ECHO_DEFAULT_VAL 1u
#define CNASIO_ECHO_MIN_IDX 11u
#define CNASIO_ECHO_MAX_IDX 26u

#define CNASIO_ECHO_MAX_DATA 4096u
#define CNASIO_ECHO_MAX_BURST 100000u
#define CNASIO_ECHO_MAX_DELAY_MS 60000u
#define CNASIO_ECHO_MAX_PENDING 4096u

enum cnasio_echo_cmd {
	CNASIO_ECHO_CMD_ECHO = 1,
	CNASIO_ECHO_CMD_NOTIFY = 2,
	CNASIO_ECHO_CMD_BURST = 3,
	CNASIO_ECHO_CMD_DELAY = 4,
	CNASIO_ECHO_CMD_STATS = 5,
};

enum cnasio_echo_event_kind {
	CNASIO_ECHO_EVENT_NOTIFY = 1,
	CNASIO_ECHO_EVENT_BURST = 2,
	CNASIO_ECHO_EVENT_TICK = 3,
};

struct cnasio_echo_request {
	__u32 cmd;  /* enum cnasio_echo_cmd */
	__u32 arg;  /* BURST: count, DELAY: milliseconds, else 0 */
	/* followed by data bytes */
};

struct cnasio_echo_reply {
	__s32 err;  /* 0 or a positive errno */
	__u32 arg;  /* see the command table above */
	/* followed by data bytes */
};

struct cnasio_echo_event {
	__u32 kind;   /* enum cnasio_echo_event_kind */
	__u32 index;  /* BURST: 0..count-1; NOTIFY, TICK: module-wide counter */
	__u32 count;  /* BURST: events in this burst; else 0 */
	__u32 burst;  /* BURST: which burst (module-wide counter); else 0 */
	/* followed by data bytes (NOTIFY: the request's data) */
};

/* Counters since the module was loaded (reply data of CNASIO_ECHO_CMD_STATS). */
struct cnasio_echo_stats {
	__u64 requests;          /* callbacks entered */
	__u64 replies;           /* replies queued to a requester */
	__u64 replies_dropped;   /* replies the requester's socket refused */
	__u64 events;            /* multicast events delivered to a listener */
	__u64 events_dropped;    /* events no listener took (no listener or full) */
	__u64 delays_pending;    /* delayed replies still queued */
};

#define CNASIO_ECHO_REQUEST_SIZE 8u
#define CNASIO_ECHO_REPLY_SIZE 8u
#define CNASIO_ECHO_EVENT_SIZE 16u
#define CNASIO_ECHO_STATS_SIZE 48u

#ifdef __cplusplus
static_assert(sizeof(struct cnasio_echo_request) == CNASIO_ECHO_REQUEST_SIZE, "request layout");
static_assert(sizeof(struct cnasio_echo_reply) == CNASIO_ECHO_REPLY_SIZE, "reply layout");
static_assert(sizeof(struct cnasio_echo_event) == CNASIO_ECHO_EVENT_SIZE, "event layout");
static_assert(sizeof(struct cnasio_echo_stats) == CNASIO_ECHO_STATS_SIZE, "stats layout");
#endif

#endif /* CNASIO_ECHO_PROTO_H */
