/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_ct.h: the connection table: one record per NATed connection, kept alive and given TCP state
 * by both directions, with a reply entry per connection that names it. */
#ifndef KP_CT_H
#define KP_CT_H

#include "kp_maps.h"
#include "kp_lb.h"

#define KP_NS_PER_S 1000000000ULL
#define KP_TCP_FIN 0x01
#define KP_TCP_SYN 0x02
#define KP_TCP_RST 0x04
#define KP_TCP_ACK 0x10
#define KP_CT_FINS (KP_CT_F_FIN_ORIG | KP_CT_F_FIN_REPLY)
/* A connection idle this long has its reply entry checked on its next forward packet, so an
 * entry the LRU evicted under pressure comes back before the backend speaks again. */
#define KP_CT_REPLY_CHECK_NS (30 * KP_NS_PER_S)
/* Client ports tried when a new connection's reply tuple is taken (netfilter's port remap). */
#define KP_REMAP_TRIES 4
#define KP_REMAP_PORT_MIN 32768
#define KP_REMAP_PORT_SPAN 28232 /* 32768-60999, Linux's default ephemeral range */
#define KP_REMAP_STRIDE 7919
/* Masquerade ports tried for a new connection, Cilium's SNAT retries a bounded number of times too:
 * with half of a (masquerade address, backend) pair's ports taken, 1 in 256 connections fails. */
#define KP_MASQ_TRIES 8

/* How a VIP packet's backend was found (selects the per-VIP counter). */
enum kp_ct_kind {
	KP_CT_EXISTING,
	KP_CT_FIRST,
	KP_CT_UNTRACKED,
	KP_CT_NO_SERVER,
	KP_CT_CLASH,
};

/* The result of looking up a VIP packet's connection. */
struct kp_ct_pick {
	struct kp_backend *be;
	__u64 now;
	__u32 be_id;
	__be32 be_addr;
	__be32 masq_addr; /* 0, or the source address to send to the backend (masqueraded, IPv4) */
	__be16 nat_port; /* the source port to send to the backend */
	__u8 loose;      /* a new record for a mid-connection packet */
	__u8 remapped;
	__u8 local_only; /* the VIP entry picks local endpoints only: none is a drop, not a reject */
	__u8 masq;       /* a new connection that is masqueraded (masq_addr is set for every one) */
	__s8 kind;       /* enum kp_ct_kind, or -1 while unknown */
	__u8 v6;         /* set by the caller: the backends are IPv6 (the packet is too, unless the
	                    connection is across families: NAT46, NAT64) */
	__u8 masq6;      /* IPv6 and masqueraded: the source address to send is the scratch's masq */
	__u8 proto;      /* the packet's, for kp_ct_new (which must not see the packet's pointers) */
	__u8 tcp_flags;
};

/* `then` is longer ago than state's timeout (0: never expires). */
static __always_inline int kp_ct_idle(__u8 state, __u64 then, const struct kp_config *cfg, __u64 now)
{
	__u64 timeout;

	if (state >= KP_CT_STATES)
		return 1;
	timeout = (__u64)cfg->timeout_s[state] * KP_NS_PER_S;
	return timeout && now > then && now - then > timeout;
}

/* The forward record has seen no packet of its own for longer than its state's timeout. Replies
 * that took the fast path are recorded in the reply entry, so kp_ct_alive looks there too. */
static __always_inline int kp_ct_expired(const struct kp_ct *ct, const struct kp_config *cfg, __u64 now)
{
	return kp_ct_idle(ct->state, ct->last_seen_ns, cfg, now);
}

/* A connection lives while either direction saw a packet within its state's timeout. */
static __always_inline int kp_ct_alive(const struct kp_ct *ct, const struct kp_ct *rv, const struct kp_config *cfg,
				       __u64 now)
{
	return !kp_ct_expired(ct, cfg, now) || (rv && !kp_ct_idle(ct->state, rv->last_seen_ns, cfg, now));
}

/* Closed (RST, or both FINs acknowledged): a new connection may take its tuple. */
static __always_inline int kp_ct_closed(const struct kp_ct *ct)
{
	return ct->state == KP_CT_TIME_WAIT || ct->state == KP_CT_CLOSE;
}

static __always_inline int kp_tcp_pure_syn_of(__u8 proto, __u8 tf)
{
	return proto == IPPROTO_TCP && (tf & (KP_TCP_SYN | KP_TCP_ACK | KP_TCP_RST | KP_TCP_FIN)) == KP_TCP_SYN;
}

static __always_inline int kp_tcp_pure_syn(const struct kp_pkt *pkt)
{
	return kp_tcp_pure_syn_of(pkt->proto, pkt->tcp_flags);
}

/* The state after one packet (protocol, TCP flags tf) in direction dir, as conntrack moves it. flags
 * gets the FIN bits. */
static __always_inline __u8 kp_ct_next_state_of(__u8 state, __u8 *flags, __u8 proto, __u8 tf, int dir)
{
	__u8 fin_dir = dir == KP_DIR_ORIG ? KP_CT_F_FIN_ORIG : KP_CT_F_FIN_REPLY;

	if (proto != IPPROTO_TCP)
		return dir == KP_DIR_REPLY ? KP_CT_UDP_STREAM : state;
	if (tf & KP_TCP_RST)
		return KP_CT_CLOSE;
	if (tf & KP_TCP_SYN) {
		if (dir == KP_DIR_REPLY && (tf & KP_TCP_ACK) && state == KP_CT_SYN_SENT)
			return KP_CT_SYN_RECV;
		return state;
	}
	if (tf & KP_TCP_FIN) {
		*flags |= fin_dir;
		if ((*flags & KP_CT_FINS) == KP_CT_FINS)
			return state < KP_CT_LAST_ACK ? KP_CT_LAST_ACK : state;
		return state < KP_CT_FIN_WAIT ? KP_CT_FIN_WAIT : state;
	}
	if (!(tf & KP_TCP_ACK))
		return state;
	if (state == KP_CT_SYN_RECV && dir == KP_DIR_ORIG)
		return KP_CT_ESTABLISHED;
	if (state == KP_CT_FIN_WAIT && !(*flags & fin_dir))
		return KP_CT_CLOSE_WAIT; /* the other side acknowledged the FIN and keeps its half open */
	if (state == KP_CT_LAST_ACK)
		return KP_CT_TIME_WAIT;
	return state;
}

static __always_inline __u8 kp_ct_next_state(__u8 state, __u8 *flags, const struct kp_pkt *pkt, int dir)
{
	return kp_ct_next_state_of(state, flags, pkt->proto, pkt->tcp_flags, dir);
}

/* One packet of the connection in direction dir: state and last-seen time. The record is shared
 * by every CPU, so it is written only when something changed (the coarse clock moves in ticks). */
static __always_inline void kp_ct_track(struct kp_ct *ct, const struct kp_pkt *pkt, int dir, __u64 now)
{
	__u8 flags = ct->flags;
	__u8 state = kp_ct_next_state(ct->state, &flags, pkt, dir);

	if (state != ct->state)
		ct->state = state;
	if (flags != ct->flags)
		ct->flags = flags;
	if (ct->last_seen_ns != now)
		ct->last_seen_ns = now;
}

/* The forward key a reply entry names: client:port -> VIP:port (a masqueraded connection's
 * replies go to the masquerade address, and the entry keeps the client's). */
static __always_inline void kp_ct_orig_key(struct kp_flow_key *fk, const struct kp_flow_key *rk,
					   const struct kp_ct *rv)
{
	__builtin_memset(fk, 0, sizeof(*fk));
	__builtin_memcpy(fk->saddr, (rv->flags & KP_CT_F_MASQ) ? rv->peer.client_addr : rk->daddr, KP_ADDR_LEN);
	__builtin_memcpy(fk->daddr, rv->vip_addr, KP_ADDR_LEN);
	fk->sport = rv->client_port;
	fk->dport = rv->vip_port;
	fk->proto = rk->proto;
}

static __always_inline int kp_addr_is_zero(const __u8 *a)
{
	__u64 a0, a1;

	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	return !(a0 | a1);
}

/* ::ffff:a.b.c.d (read in registers: kp_addr_to_v4's out-parameter would take a stack slot). */
static __always_inline int kp_addr_is_v4(const __u8 *a)
{
	__u64 lo;
	__u32 mid;

	__builtin_memcpy(&lo, a, sizeof(lo));
	__builtin_memcpy(&mid, a + sizeof(lo), sizeof(mid));
	return lo == 0 && mid == bpf_htonl(0x0000ffff);
}

static __always_inline int kp_addr_eq(const __u8 *a, const __u8 *b)
{
	__u64 a0, a1, b0, b1;

	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	__builtin_memcpy(&b0, b, 8);
	__builtin_memcpy(&b1, b + 8, 8);
	return a0 == b0 && a1 == b1;
}

/* The backend slot of a connection still serves it: same generation, active or draining. */
static __always_inline int kp_ct_slot_serves(__u32 id, __u32 gen)
{
	struct kp_backend *be = bpf_map_lookup_elem(&kp_backends, &id);

	return be && be->gen == gen && (be->state == KP_BACKEND_ACTIVE || be->state == KP_BACKEND_DRAINING);
}

/* The live connection record a reply entry belongs to, or NULL when the entry is a leftover: its
 * connection expired, was evicted, picked another backend or client port since, or its backend
 * was flushed. */
static __always_inline struct kp_ct *kp_ct_owner_in(const struct kp_flow_key *rk, const struct kp_ct *rv,
						    const struct kp_config *cfg, __u64 now, struct kp_flow_key *fk)
{
	struct kp_ct *ct;

	if (!kp_ct_slot_serves(rv->backend_id, rv->backend_gen))
		return NULL;
	kp_ct_orig_key(fk, rk, rv);
	ct = bpf_map_lookup_elem(&kp_ct, fk);
	if (!ct || ct->backend_id != rv->backend_id || ct->backend_gen != rv->backend_gen ||
	    ct->client_port != rk->dport || !kp_ct_alive(ct, rv, cfg, now))
		return NULL;
	if ((ct->flags ^ rv->flags) & KP_CT_F_MASQ)
		return NULL;
	if ((ct->flags & KP_CT_F_MASQ) && !kp_addr_eq(ct->vip_addr, rk->daddr))
		return NULL;
	return ct;
}

/* kp_ct_owner_in with its key on the stack. */
static __always_inline struct kp_ct *kp_ct_owner(const struct kp_flow_key *rk, const struct kp_ct *rv,
						 const struct kp_config *cfg, __u64 now)
{
	struct kp_flow_key fk;

	return kp_ct_owner_in(rk, rv, cfg, now, &fk);
}

/* Two reply entries of one tuple name the same connection (a masqueraded one's tuple does not
 * hold the client's address, so its entry must). */
static __always_inline int kp_ct_same_conn(const struct kp_ct *a, const struct kp_ct *b)
{
	if (a->vip_port != b->vip_port || a->client_port != b->client_port || !kp_addr_eq(a->vip_addr, b->vip_addr))
		return 0;
	if ((a->flags ^ b->flags) & KP_CT_F_MASQ)
		return 0;
	return !(a->flags & KP_CT_F_MASQ) || kp_addr_eq(a->peer.client_addr, b->peer.client_addr);
}

/* Takes the reply tuple rk for the connection rv describes: 0 if it is now ours, -1 if a live,
 * open connection of another VIP or client port holds it. With the scratch's evict set, a UDP connection that never
 * saw a reply gives the tuple up (its record goes, so its next packet is a new connection): under
 * port pressure, as netfilter's early drop gives up connections that are not assured. */
static __noinline int kp_ct_claim(const struct kp_flow_key *rk, const struct kp_ct *rv,
				  const struct kp_config *cfg, __u64 now)
{
	struct kp_ct *old;

	if (!bpf_map_update_elem(&kp_ct, rk, rv, BPF_NOEXIST))
		return 0;
	old = bpf_map_lookup_elem(&kp_ct, rk);
	if (old && !kp_ct_same_conn(old, rv)) {
		/* The forward key goes in the scratch: this runs under kp_ct_new, at the deepest stack. */
		struct kp_scratch *s = kp_scratch_get();
		struct kp_ct *owner = s ? kp_ct_owner_in(rk, old, cfg, now, &s->fk) : NULL;

		if (owner && !kp_ct_closed(owner)) {
			if (!s->evict || rk->proto != IPPROTO_UDP || owner->state != KP_CT_UDP)
				return -1;
			bpf_map_delete_elem(&kp_ct, &s->fk);
			s->evicted = 1; /* counted by the caller: this frame is at the deepest stack */
		}
	}
	return bpf_map_update_elem(&kp_ct, rk, rv, BPF_ANY) ? -1 : 0;
}

/* Reply entry of a connection from key to backend be, the backend seeing client port nat_port and,
 * if masq is not NULL, the masquerade address masq as the client's; vip_flags: its VIP's (only
 * KP_VIP_F_XLATE is read). */
static __always_inline void kp_ct_reply_entry(struct kp_flow_key *rk, struct kp_ct *rv,
					      const struct kp_flow_key *key, const struct kp_backend *be,
					      __u32 be_id, __u32 vip_id, __be16 nat_port, const __u8 *masq, __u16 vip_flags)
{
	__builtin_memset(rk, 0, sizeof(*rk));
	__builtin_memset(rv, 0, sizeof(*rv));
	__builtin_memcpy(rk->saddr, be->addr, KP_ADDR_LEN);
	__builtin_memcpy(rk->daddr, masq ? masq : key->saddr, KP_ADDR_LEN);
	if (masq)
		__builtin_memcpy(rv->peer.client_addr, key->saddr, KP_ADDR_LEN);
	rk->sport = be->port;
	rk->dport = nat_port;
	rk->proto = key->proto;
	rk->dir = KP_DIR_REPLY;
	__builtin_memcpy(rv->vip_addr, key->daddr, KP_ADDR_LEN);
	rv->vip_port = key->dport;
	rv->client_port = key->sport;
	rv->vip_id = vip_id;
	rv->backend_id = be_id;
	rv->backend_gen = be->gen;
	rv->flags = KP_CT_F_REPLY | (masq ? KP_CT_F_MASQ : 0) | (vip_flags & KP_VIP_F_XLATE ? KP_CT_F_XLATE : 0);
}

/* Claims the connection's reply tuple with the client's own port, or else with one of a few
 * ports derived from the tuple's hash (netfilter remaps the same way). A masqueraded connection
 * (masq: its address is s->masq) always takes a port of kp_masq's range: the node's own sockets
 * never use one, so only another masqueraded connection can hold the tuple, and the claim is
 * atomic. Returns the port the backend will see, or -1 when every candidate is held by a live
 * connection (not 0: a client's source port may be 0, RFC 768, and it is kept as netfilter keeps it). */
static __always_inline int kp_ct_claim_port(const struct kp_flow_key *key, const struct kp_ct_pick *pick,
					       const struct kp_backend *be, const struct kp_vip *vip,
					       const struct kp_config *cfg, struct kp_scratch *s, int masq)
{
	__u32 h, lo = KP_REMAP_PORT_MIN, span = KP_REMAP_PORT_SPAN, tries = KP_REMAP_TRIES;
	__u64 now = pick->now;
	int i;

	kp_ct_reply_entry(&s->rk, &s->rv, key, be, pick->be_id, vip->id, key->sport, masq ? s->masq : NULL, vip->flags);
	if (masq) {
		lo = s->masq_lo;
		span = s->masq_span ? s->masq_span : 1;
		tries = KP_MASQ_TRIES;
	} else if (!kp_ct_claim(&s->rk, &s->rv, cfg, now)) {
		return key->sport;
	}
	h = kp_flow_hash(key, cfg->hash_seed ^ pick->be_id);
	for (i = 0; i < KP_MASQ_TRIES; i++) {
		if (i >= tries)
			break;
		s->rk.dport = bpf_htons(lo + (h + i * KP_REMAP_STRIDE) % span);
		/* Every masquerade port tried is held: the last try may take an unreplied UDP flow's. */
		s->evict = masq && i == tries - 1;
		if (!kp_ct_claim(&s->rk, &s->rv, cfg, now)) {
			s->evict = 0;
			return s->rk.dport;
		}
		s->evict = 0;
	}
	return -1;
}

/* The reply entry of a forward record whose backend is be, if it is still that record's. */
static __always_inline struct kp_ct *kp_ct_reply_of(const struct kp_flow_key *key, const struct kp_ct *ct,
						    const struct kp_backend *be, struct kp_flow_key *rk)
{
	int masq = ct->flags & KP_CT_F_MASQ;
	struct kp_ct *rv;

	__builtin_memset(rk, 0, sizeof(*rk));
	__builtin_memcpy(rk->saddr, be->addr, KP_ADDR_LEN);
	__builtin_memcpy(rk->daddr, masq ? ct->vip_addr : key->saddr, KP_ADDR_LEN);
	rk->sport = be->port;
	rk->dport = ct->client_port;
	rk->proto = key->proto;
	rk->dir = KP_DIR_REPLY;
	rv = bpf_map_lookup_elem(&kp_ct, rk);
	if (!rv || rv->backend_id != ct->backend_id || rv->backend_gen != ct->backend_gen || rv->client_port != key->sport)
		return NULL;
	if (masq && (!(rv->flags & KP_CT_F_MASQ) || !kp_addr_eq(rv->peer.client_addr, key->saddr)))
		return NULL;
	return rv;
}

/* The forward record's state changed: its reply entry mirrors it, so replies can take the fast path
 * only in the states where a reply cannot move the connection. A subprogram: a few packets per
 * connection (handshake, close). */
static __noinline void kp_ct_mirror(const struct kp_flow_key *key, const struct kp_ct *ct, const struct kp_backend *be)
{
	struct kp_scratch *s = kp_scratch_get();
	struct kp_ct *rv;

	if (!s)
		return;
	rv = kp_ct_reply_of(key, ct, be, &s->rk);
	if (rv && rv->state != ct->state)
		rv->state = ct->state;
}

/* The forward record looks idle, but its replies may have kept it alive (they are recorded in the
 * reply entry on the fast path). A subprogram: only for a record idle past its state's timeout. */
static __noinline int kp_ct_replies_alive(const struct kp_flow_key *key, const struct kp_ct *ct, const struct kp_backend *be,
					  const struct kp_config *cfg)
{
	struct kp_scratch *s = kp_scratch_get();
	struct kp_ct *rv;

	if (!s)
		return 0;
	rv = kp_ct_reply_of(key, ct, be, &s->rk);
	return rv && !kp_ct_idle(ct->state, rv->last_seen_ns, cfg, kp_now());
}

/* The backend a forward packet's record holds, if that backend still serves the connection. */
static __always_inline struct kp_backend *kp_ct_backend(const struct kp_ct *ct, int v6, __be32 *addr)
{
	struct kp_backend *be = kp_backend_of(ct->backend_id, v6, addr);

	if (!be || be->gen != ct->backend_gen)
		return NULL;
	if (be->state != KP_BACKEND_ACTIVE && be->state != KP_BACKEND_DRAINING)
		return NULL;
	return be;
}


/* After KP_CT_REPLY_CHECK_NS of silence, a forward packet makes sure its reply entry is still there
 * (the LRU may have evicted it while the connection was quiet). A subprogram: rare. */
static __noinline void kp_ct_reply_refresh(const struct kp_flow_key *key, const struct kp_ct *ct,
					   const struct kp_backend *be, const struct kp_config *cfg)
{
	struct kp_scratch *s = kp_scratch_get();

	if (!s || kp_ct_reply_of(key, ct, be, &s->rk))
		return;
	kp_ct_reply_entry(&s->rk, &s->rv, key, be, ct->backend_id, ct->vip_id, ct->client_port,
			  (ct->flags & KP_CT_F_MASQ) ? ct->vip_addr : NULL, ct->flags & KP_CT_F_XLATE ? KP_VIP_F_XLATE : 0);
	kp_ct_claim(&s->rk, &s->rv, cfg, kp_now());
}

/* Session affinity (ClientIP): a new connection from a client whose last new connection to the VIP is
 * within its timeout goes to the same backend, while that backend is active in the slot it had (a
 * flushed or removed one is picked again), eligible for the entry (local under a local policy) and not
 * terminating while Maglev found a ready one. Otherwise Maglev's pick stands and is remembered. As
 * iptables' recent match, only new connections refresh it. A subprogram: affinity VIPs only. */
static __noinline void kp_affinity_pick(const struct kp_flow_key *key, const struct kp_vip *vip, struct kp_ct_pick *pick,
					struct kp_backend **pbe)
{
	struct kp_scratch *s = kp_scratch_get();
	struct kp_backend *be;
	struct kp_affinity *a;
	__u32 id = vip->id, *timeout;
	__be32 addr;

	if (!s)
		return;
	timeout = bpf_map_lookup_elem(&kp_vip_affinity, &id);
	s->ak.vip_id = id;
	s->ak.pad = 0;
	__builtin_memcpy(s->ak.addr, key->saddr, KP_ADDR_LEN);
	a = bpf_map_lookup_elem(&kp_affinity, &s->ak);
	if (a && timeout && pick->now - a->last_ns <= (__u64)*timeout * KP_NS_PER_S) {
		be = kp_backend_of(a->backend_id, pick->v6, &addr);
		if (be && be->gen == a->backend_gen && be->state == KP_BACKEND_ACTIVE &&
		    (!(vip->flags & KP_VIP_F_LOCAL) || (be->flags & KP_BACKEND_F_LOCAL)) &&
		    !((be->flags & KP_BACKEND_F_TERMINATING) && *pbe && !((*pbe)->flags & KP_BACKEND_F_TERMINATING))) {
			*pbe = be;
			pick->be_id = a->backend_id;
			pick->be_addr = addr;
			if (a->last_ns != pick->now)
				a->last_ns = pick->now;
			return;
		}
	}
	be = *pbe;
	if (!be)
		return;
	s->av.backend_id = pick->be_id;
	s->av.backend_gen = be->gen;
	s->av.last_ns = pick->now;
	bpf_map_update_elem(&kp_affinity, &s->ak, &s->av, BPF_ANY);
}

/* The source a new connection across families comes from (into s->masq), with a port of kp_masq's
 * range: 1, or -1 if there is none. NAT46: the client's IPv4 address embedded in the NAT46 prefix
 * (RFC 6052 /96), so the backend can tell clients apart; NAT64: the node's IPv4 masquerade address,
 * as NAT64 gateways do. A subprogram: new cross-family connections only. */
static __noinline int kp_ct_xlate_src(const struct kp_flow_key *key, struct kp_scratch *s)
{
	__u32 k = KP_MASQ_NAT46;
	struct kp_masq *m;

	if (kp_addr_is_v4(key->saddr)) {
		m = bpf_map_lookup_elem(&kp_masq, &k);
		if (m && !kp_addr_is_zero(m->addr)) {
			__builtin_memcpy(s->masq, m->addr, KP_V4MAPPED_PREFIX_LEN);
		} else {
			__builtin_memset(s->masq, 0, KP_V4MAPPED_PREFIX_LEN);
			s->masq[1] = 0x64; /* 64:ff9b::/96, RFC 6052's well-known prefix */
			s->masq[2] = 0xff;
			s->masq[3] = 0x9b;
		}
		__builtin_memcpy(s->masq + KP_V4MAPPED_PREFIX_LEN, key->saddr + KP_V4MAPPED_PREFIX_LEN, 4);
	}
	k = KP_MASQ_V4;
	m = bpf_map_lookup_elem(&kp_masq, &k); /* the port range, and NAT64's source address */
	if (!m)
		return -1;
	if (!kp_addr_is_v4(key->saddr)) {
		if (kp_addr_is_zero(m->addr) || !kp_addr_is_v4(m->addr))
			return -1;
		__builtin_memcpy(s->masq, m->addr, KP_ADDR_LEN);
	}
	s->masq_lo = KP_MASQ_PORT_MIN;
	s->masq_span = KP_MASQ_PORT_MAX - KP_MASQ_PORT_MIN + 1;
	if (m->port_min && m->port_max >= m->port_min) {
		s->masq_lo = m->port_min;
		s->masq_span = m->port_max - m->port_min + 1;
	}
	return 1;
}

/* Is a new connection to vip's entry, given backend be, masqueraded, and to which address (into
 * masq)? A hairpin connection (a pod reaching itself through its service) always is, or its
 * replies would never leave the pod, as kube-proxy's KUBE-MARK-MASQ hairpin rule does; an external
 * entry under externalTrafficPolicy cluster is when the backend is on another node, so that its
 * replies come back through this node. Node port entries use the node address the client dialled,
 * the others kp_masq's address (none set: not masqueraded). */
static __noinline int kp_ct_masq_addr(const struct kp_flow_key *key, const struct kp_vip *vip,
				      const struct kp_backend *be, struct kp_scratch *s)
{
	__u32 zero = KP_MASQ_V4, lo = KP_MASQ_PORT_MIN, hi = KP_MASQ_PORT_MAX;
	int hairpin = kp_addr_eq(key->saddr, be->addr);
	struct kp_masq *m;
	__u32 fam;

	if (!hairpin && (!(vip->flags & KP_VIP_F_MASQ) || (be->flags & KP_BACKEND_F_LOCAL)))
		return 0;
	m = bpf_map_lookup_elem(&kp_masq, &zero);
	if (m && m->port_min && m->port_max >= m->port_min) {
		lo = m->port_min;
		hi = m->port_max;
	}
	s->masq_lo = lo;
	s->masq_span = hi - lo + 1;
	if ((vip->flags & KP_VIP_F_NODEPORT) && !hairpin) {
		__builtin_memcpy(s->masq, key->daddr, KP_ADDR_LEN);
		return 1;
	}
	fam = kp_addr_is_v4(key->daddr) ? KP_MASQ_V4 : KP_MASQ_V6;
	if (fam != KP_MASQ_V4)
		m = bpf_map_lookup_elem(&kp_masq, &fam);
	if (!m || kp_addr_is_zero(m->addr) || kp_addr_is_v4(m->addr) != (fam == KP_MASQ_V4))
		return 0; /* none set for the connection's family */
	__builtin_memcpy(s->masq, m->addr, KP_ADDR_LEN);
	return 1;
}

/* A new connection (or one whose record expired, closed or lost its backend): Maglev's pick, the
 * reply tuple claimed (the client port remapped if it is taken), the record written. Returns an
 * enum kp_ct_kind, and the backend's id in pick (the caller looks the backend up: this writes no
 * pointer into the pick). A global function, so the verifier checks it once, on its own, rather than
 * again for every state the packet paths reach it in (thousands of times, with its port-claim loop,
 * past the verifier's limit with two programs); and its locals stay off the established path's stack. */
__noinline int kp_ct_new(const struct kp_flow_key *key, const struct kp_vip *vip, const struct kp_config *cfg,
			 struct kp_ct_pick *pick)
{
	struct kp_scratch *s = kp_scratch_get();
	struct kp_backend *be;
	struct kp_ct *ncp;
	int masq, port;

	if (!s || !key || !vip || !cfg || !pick) /* a global function's pointers may be NULL to the verifier */
		return KP_CT_NO_SERVER;
	ncp = &s->nc;
	pick->local_only = !!(vip->flags & KP_VIP_F_LOCAL);
	be = kp_maglev_pick(key, vip, cfg->hash_seed, &pick->be_id, &pick->be_addr, pick->v6);
	if (vip->flags & KP_VIP_F_AFFINITY)
		kp_affinity_pick(key, vip, pick, &be);
	if (!be) {
		pick->be_id = KP_BACKEND_NONE;
		return KP_CT_NO_SERVER;
	}
	/* across families always (called from here: under kp_ct_masq_addr, its frame would take this
	 * chain past 512 bytes) */
	masq = vip->flags & KP_VIP_F_XLATE ? kp_ct_xlate_src(key, s) : kp_ct_masq_addr(key, vip, be, s);
	if (masq < 0) {
		pick->be_id = KP_BACKEND_NONE;
		return KP_CT_NO_SERVER;
	}
	port = kp_ct_claim_port(key, pick, be, vip, cfg, s, masq);
	pick->masq = masq;
	if (port < 0)
		return KP_CT_CLASH;
	pick->nat_port = port;
	if (masq) {
		if (pick->v6)
			pick->masq6 = 1;
		else
			kp_addr_to_v4(s->masq, &pick->masq_addr);
	} else {
		pick->remapped = pick->nat_port != key->sport;
	}
	__builtin_memset(ncp, 0, sizeof(*ncp));
	if (masq) {
		ncp->flags |= KP_CT_F_MASQ | (vip->flags & KP_VIP_F_XLATE ? KP_CT_F_XLATE : 0);
		__builtin_memcpy(ncp->vip_addr, s->masq, KP_ADDR_LEN);
	}
	ncp->backend_id = pick->be_id;
	ncp->backend_gen = be->gen;
	ncp->vip_id = vip->id;
	ncp->client_port = pick->nat_port;
	ncp->last_seen_ns = pick->now;
	if (pick->remapped)
		ncp->flags |= KP_CT_F_REMAP;
	if (pick->proto != IPPROTO_TCP) {
		ncp->state = KP_CT_UDP;
	} else if (kp_tcp_pure_syn_of(pick->proto, pick->tcp_flags)) {
		ncp->state = KP_CT_SYN_SENT;
	} else {
		/* Loose pick-up (conntrack's tcp_loose): a mid-stream packet, e.g. after an eviction or a
		 * restart; Maglev gives the same backend while the VIP's table is unchanged. */
		__u8 flags = ncp->flags | KP_CT_F_LOOSE;

		pick->loose = 1;
		ncp->state = kp_ct_next_state_of(KP_CT_ESTABLISHED, &flags, pick->proto, pick->tcp_flags, KP_DIR_ORIG);
		ncp->flags = flags;
	}
	if (bpf_map_update_elem(&kp_ct, key, ncp, BPF_ANY))
		return KP_CT_UNTRACKED;
	return KP_CT_FIRST;
}

/* An existing IPv6 masqueraded connection: its masquerade address goes to the scratch (a pointer in
 * the pick would grow kp_xdp's frame past the stack limit of its call chains). */
static __always_inline void kp_masq6_from(const struct kp_ct *ct, struct kp_ct_pick *pick)
{
	struct kp_scratch *s = kp_scratch_get();

	if (!s)
		return;
	__builtin_memcpy(s->masq, ct->vip_addr, KP_ADDR_LEN);
	pick->masq6 = 1;
}

/* KP_CT_EXISTING if the forward record ct of a packet is a live connection whose backend still
 * serves it, else -1 (kp_ct_new makes one). pick->now is set by the caller. */
static __always_inline int kp_ct_existing(struct kp_ct *ct, const struct kp_flow_key *key, const struct kp_pkt *pkt,
					  const struct kp_config *cfg, struct kp_ct_pick *pick)
{
	__u64 now = pick->now;
	__u8 state;

	if (kp_ct_closed(ct) && kp_tcp_pure_syn(pkt))
		return -1;
	pick->be = kp_ct_backend(ct, pick->v6, &pick->be_addr);
	if (!pick->be)
		return -1;
	if (kp_ct_expired(ct, cfg, now) && !kp_ct_replies_alive(key, ct, pick->be, cfg))
		return -1;
	if (now - ct->last_seen_ns > KP_CT_REPLY_CHECK_NS)
		kp_ct_reply_refresh(key, ct, pick->be, cfg);
	state = ct->state;
	kp_ct_track(ct, pkt, KP_DIR_ORIG, now);
	if (ct->state != state)
		kp_ct_mirror(key, ct, pick->be);
	pick->be_id = ct->backend_id;
	pick->nat_port = ct->client_port;
	if (ct->flags & KP_CT_F_MASQ) {
		if (pick->v6)
			kp_masq6_from(ct, pick);
		else
			kp_addr_to_v4(ct->vip_addr, &pick->masq_addr);
	}
	return KP_CT_EXISTING;
}

/* A reply the reply entry alone can translate: one that cannot move the connection's state (no
 * SYN, FIN or RST, in a state where a plain segment changes nothing), within the state's timeout
 * of the last reply, from a backend slot that still serves it. Anything else takes the slow path
 * through the forward record. */
static __always_inline int kp_ct_reply_fast(const struct kp_ct *rv, const struct kp_pkt *pkt,
					    const struct kp_config *cfg, __u64 now)
{
	if (pkt->proto == IPPROTO_TCP) {
		if (pkt->tcp_flags & (KP_TCP_SYN | KP_TCP_FIN | KP_TCP_RST))
			return 0;
		if (rv->state != KP_CT_ESTABLISHED && rv->state != KP_CT_CLOSE_WAIT)
			return 0;
	} else if (rv->state != KP_CT_UDP_STREAM) {
		return 0;
	}
	if (kp_ct_idle(rv->state, rv->last_seen_ns, cfg, now))
		return 0;
	return kp_ct_slot_serves(rv->backend_id, rv->backend_gen);
}

/* A reply entry for a packet's own tuple (backend -> client). */
static __always_inline void kp_ct_reply_key(struct kp_flow_key *rk, const struct kp_flow_key *key)
{
	*rk = *key;
	rk->dir = KP_DIR_REPLY;
}

/* A packet that is neither for a VIP nor a reply: if it opens a connection (a TCP SYN, any UDP)
 * whose backend-side tuple a NATed connection holds, that connection's replies would be taken for
 * its own. A live connection keeps the tuple and the newcomer is refused (-1); a closed one's
 * leftover entry is removed so the newcomer's replies pass untouched (returns 1). */
static __always_inline int kp_ct_direct(const struct kp_flow_key *key, const struct kp_pkt *pkt, const struct kp_config *cfg)
{
	__u64 now = kp_now();
	struct kp_flow_key rk = {};
	struct kp_ct *rv, *owner;

	if (pkt->proto == IPPROTO_TCP && !kp_tcp_pure_syn(pkt))
		return 0;
	__builtin_memcpy(rk.saddr, key->daddr, KP_ADDR_LEN);
	__builtin_memcpy(rk.daddr, key->saddr, KP_ADDR_LEN);
	rk.sport = key->dport;
	rk.dport = key->sport;
	rk.proto = key->proto;
	rk.dir = KP_DIR_REPLY;
	rv = bpf_map_lookup_elem(&kp_ct, &rk);
	if (!rv)
		return 0;
	owner = kp_ct_owner(&rk, rv, cfg, now);
	if (owner && !kp_ct_closed(owner))
		return -1;
	bpf_map_delete_elem(&kp_ct, &rk);
	return 1;
}

#endif /* KP_CT_H */
