/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_sock.h: services for the node's own sockets. XDP never sees traffic the node originates, so
 * cgroup socket-address hooks translate at the socket instead, as Cilium's socket load balancing
 * does: connect() and an unconnected sendmsg() to a VIP go to a backend picked from the VIP's
 * Maglev table, and recvmsg() and getpeername() show the VIP again. docs/DESIGN.md says why hooks
 * rather than a tc program. */
#ifndef KP_SOCK_H
#define KP_SOCK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "kp_maps.h"
#include "kp_lb.h"
#include "kp_ct.h"

/* From the socket headers, which a BPF object does not include. */
#define KP_AF_INET 2
#define KP_SOCK_STREAM 1
#define KP_SOCK_DGRAM 2

/* These hooks run in process context, which XDP (softirq) may interrupt on the same CPU: they keep
 * their keys on their own stack, never in the shared per-CPU scratch, and count atomically. */
static __always_inline void kp_sock_stat(__u32 code)
{
	__u64 *v = bpf_map_lookup_elem(&kp_stats, &code);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline __u8 kp_sock_proto(const struct bpf_sock_addr *ctx)
{
	return ctx->type == KP_SOCK_STREAM ? IPPROTO_TCP : ctx->type == KP_SOCK_DGRAM ? IPPROTO_UDP : 0;
}

/* connect() or sendmsg() to ctx's address: a VIP's is replaced by its socket's backend. The pick
 * stays with the socket while its backend slot serves it (draining included); a flushed slot (gen
 * bump) or a removed VIP picks again. Returns 0 to refuse (the VIP has no serving endpoint). */
static __always_inline int kp_sock_to_backend(struct bpf_sock_addr *ctx)
{
	struct kp_flow_key fk = {};
	struct kp_sock_key sk = {};
	struct kp_sock_nat nat = {};
	struct kp_config *cfg;
	struct kp_backend *be;
	struct kp_sock_nat *cur;
	struct kp_vip *vip;
	__u32 zero = 0, be_id = 0;
	__be32 be_addr = 0;
	__u64 cookie, now = kp_now();
	__u8 proto = kp_sock_proto(ctx);

	if (!proto || ctx->user_family != KP_AF_INET)
		return 1;
	cfg = bpf_map_lookup_elem(&kp_config, &zero);
	if (!cfg)
		return 1;
	kp_addr_from_v4(fk.daddr, ctx->user_ip4);
	fk.dport = (__be16)ctx->user_port;
	fk.proto = proto;
	vip = kp_vip_lookup_stack(&fk, cfg);
	if (!vip)
		return 1;
	if (vip->flags & KP_VIP_F_XLATE) {
		/* NAT46: a socket cannot change family, and XDP never sees the node's own egress. */
		kp_sock_stat(KP_STAT_SOCK_NO_BACKEND);
		return 0;
	}
	cookie = bpf_get_socket_cookie(ctx);
	sk.cookie = cookie;
	__builtin_memcpy(sk.addr, fk.daddr, KP_ADDR_LEN);
	sk.port = fk.dport;
	sk.proto = proto;
	cur = bpf_map_lookup_elem(&kp_sock, &sk);
	if (cur && cur->vip_id == vip->id && kp_ct_slot_serves(cur->backend_id, cur->backend_gen)) {
		be_id = cur->backend_id;
		be = kp_backend_v4(be_id, &be_addr);
	} else {
		/* Maglev over the socket: its source port is not chosen yet, its cookie stands for it. */
		be = kp_maglev_pick(&fk, vip, cfg->hash_seed ^ (__u32)cookie ^ (__u32)(cookie >> 32), &be_id, &be_addr, 0);
	}
	if (!be) {
		kp_sock_stat(KP_STAT_SOCK_NO_BACKEND);
		return 0;
	}
	__builtin_memcpy(nat.addr, be->addr, KP_ADDR_LEN);
	nat.port = be->port;
	nat.backend_id = be_id;
	nat.backend_gen = be->gen;
	nat.vip_id = vip->id;
	nat.last_seen_ns = now;
	if (!cur || cur->backend_id != be_id || cur->backend_gen != be->gen)
		bpf_map_update_elem(&kp_sock, &sk, &nat, BPF_ANY);
	else if (cur->last_seen_ns != now)
		cur->last_seen_ns = now;
	/* The way back: the backend's address and port as the socket will see them. */
	__builtin_memcpy(sk.addr, be->addr, KP_ADDR_LEN);
	sk.port = be->port;
	sk.dir = KP_DIR_REPLY;
	__builtin_memcpy(nat.addr, fk.daddr, KP_ADDR_LEN);
	nat.port = fk.dport;
	bpf_map_update_elem(&kp_sock, &sk, &nat, BPF_NOEXIST);
	ctx->user_ip4 = be_addr;
	ctx->user_port = be->port;
	kp_sock_stat(KP_STAT_SOCK_XLATE);
	return 1;
}

/* recvmsg() and getpeername(): a backend this socket was sent to shows as the VIP it dialled. */
static __always_inline void kp_sock_to_vip(struct bpf_sock_addr *ctx)
{
	struct kp_sock_key sk = {};
	struct kp_sock_nat *nat;
	__be32 vip;
	__u64 now;
	__u8 proto = kp_sock_proto(ctx);

	if (!proto || ctx->user_family != KP_AF_INET)
		return;
	sk.cookie = bpf_get_socket_cookie(ctx);
	kp_addr_from_v4(sk.addr, ctx->user_ip4);
	sk.port = (__be16)ctx->user_port;
	sk.proto = proto;
	sk.dir = KP_DIR_REPLY;
	nat = bpf_map_lookup_elem(&kp_sock, &sk);
	if (!nat || kp_addr_to_v4(nat->addr, &vip))
		return;
	now = kp_now();
	if (nat->last_seen_ns != now)
		nat->last_seen_ns = now;
	ctx->user_ip4 = vip;
	ctx->user_port = nat->port;
}

SEC("cgroup/connect4")
int kp_sock_connect4(struct bpf_sock_addr *ctx)
{
	return kp_sock_to_backend(ctx);
}

SEC("cgroup/sendmsg4")
int kp_sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return kp_sock_to_backend(ctx);
}

SEC("cgroup/recvmsg4")
int kp_sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	kp_sock_to_vip(ctx);
	return 1;
}

SEC("cgroup/getpeername4")
int kp_sock_getpeername4(struct bpf_sock_addr *ctx)
{
	kp_sock_to_vip(ctx);
	return 1;
}

#endif /* KP_SOCK_H */
