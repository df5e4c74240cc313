/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_icmp_xlate.h: ICMP errors about NATed connections, translated as conntrack does: the quoted
 * packet, the outer address that stands for the backend or the VIP, and every checksum. */
#ifndef KP_ICMP_XLATE_H
#define KP_ICMP_XLATE_H

#include <linux/icmp.h>
#include "kp_ct.h"

#define KP_ICMP_QUOTED_L4 8 /* the quoted TCP/UDP bytes: ports, then UDP length and checksum */
#define KP_UDP_CSUM_OFF 6

/* An ICMP error quoting a TCP or UDP packet. */
struct kp_icmp_err {
	struct icmphdr *icmp;
	struct iphdr *in_ip; /* the quoted IPv4 header, without options */
	__be16 *in_ports;    /* its source and destination ports */
	__u8 in_proto;
	__u8 in_udp_csum;    /* UDP with a checksum (TCP's lies past the quoted 8 bytes) */
};

/* Destination unreachable, time exceeded or parameter problem about the first fragment of a
 * TCP/UDP packet with a plain IPv4 header; 0 if so. */
static __always_inline int kp_icmp_err_parse(const struct kp_pkt *pkt, struct kp_icmp_err *e)
{
	struct icmphdr *icmp = pkt->l4;
	struct iphdr *in;

	if ((void *)(icmp + 1) > pkt->data_end)
		return -1;
	if (icmp->type != ICMP_DEST_UNREACH && icmp->type != ICMP_TIME_EXCEEDED && icmp->type != ICMP_PARAMETERPROB)
		return -1;
	in = (void *)(icmp + 1);
	if ((void *)(in + 1) + KP_ICMP_QUOTED_L4 > pkt->data_end)
		return -1;
	if (in->version != 4 || in->ihl != KP_IPV4_MIN_IHL || (in->frag_off & bpf_htons(KP_IP_OFFSET)))
		return -1;
	if (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP)
		return -1;
	e->icmp = icmp;
	e->in_ip = in;
	e->in_ports = (void *)(in + 1);
	e->in_proto = in->protocol;
	e->in_udp_csum = in->protocol == IPPROTO_UDP && *(__sum16 *)((void *)(in + 1) + KP_UDP_CSUM_OFF) != 0;
	return 0;
}

/* Words inside the ICMP message: the ICMP checksum (no pseudo-header in ICMPv4) follows each. */
static __always_inline void kp_icmp_set16(struct kp_icmp_err *e, __be16 *field, __be16 v)
{
	e->icmp->checksum = kp_csum_replace2(e->icmp->checksum, *field, v);
	*field = v;
}

static __always_inline void kp_icmp_set32(struct kp_icmp_err *e, __be32 *field, __be32 v)
{
	e->icmp->checksum = kp_csum_replace4(e->icmp->checksum, *field, v);
	*field = v;
}

/* The quoted UDP checksum follows the quoted addresses and ports (it covers the whole datagram,
 * so the incremental update is exact). */
static __always_inline void kp_icmp_udp_csum(struct kp_icmp_err *e, __be32 old4, __be32 new4, __be16 old2, __be16 new2)
{
	__sum16 *csum = (void *)e->in_ports + KP_UDP_CSUM_OFF;

	if (!e->in_udp_csum)
		return;
	kp_icmp_set16(e, csum, kp_udp_csum_fixup(kp_csum_replace2(kp_csum_replace4(*csum, old4, new4), old2, new2)));
}

/* A quoted address: the quoted IP header's checksum, its UDP checksum and the ICMP checksum. */
static __always_inline void kp_icmp_inner_addr(struct kp_icmp_err *e, __be32 *field, __be32 v)
{
	__be32 old = *field;

	kp_icmp_set16(e, &e->in_ip->check, kp_csum_replace4(e->in_ip->check, old, v));
	kp_icmp_udp_csum(e, old, v, 0, 0);
	kp_icmp_set32(e, field, v);
}

static __always_inline void kp_icmp_inner_port(struct kp_icmp_err *e, __be16 *field, __be16 v)
{
	__be16 old = *field;

	if (old == v)
		return;
	kp_icmp_udp_csum(e, 0, 0, old, v);
	kp_icmp_set16(e, field, v);
}

static __always_inline void kp_ip_set_addr(struct iphdr *ip, __be32 *field, __be32 v)
{
	ip->check = kp_csum_replace4(ip->check, *field, v);
	*field = v;
}

/* An error about a packet kpbpf DNATed (it quotes client:port' -> backend:port), on its way to the
 * client: the quote becomes client:port -> VIP:port, and an outer source that is the backend
 * becomes the VIP (a router on the way keeps its own address). Returns the VIP id, or 0. */
static __always_inline __u32 kp_icmp_to_client(struct kp_pkt *pkt, struct kp_icmp_err *e,
					       const struct kp_config *cfg, __u64 now)
{
	struct kp_flow_key rk = {};
	struct kp_ct *rv;
	__be32 vip, be;

	kp_addr_from_v4(rk.saddr, e->in_ip->daddr);
	kp_addr_from_v4(rk.daddr, e->in_ip->saddr);
	rk.sport = e->in_ports[1];
	rk.dport = e->in_ports[0];
	rk.proto = e->in_proto;
	rk.dir = KP_DIR_REPLY;
	rv = bpf_map_lookup_elem(&kp_ct, &rk);
	if (!rv || !kp_ct_owner(&rk, rv, cfg, now) || kp_addr_to_v4(rv->vip_addr, &vip))
		return 0;
	be = e->in_ip->daddr;
	if (pkt->ip->saddr == be)
		kp_ip_set_addr(pkt->ip, &pkt->ip->saddr, vip);
	if (rv->flags & KP_CT_F_MASQ) {
		/* To the client's own address, from the masquerade address it quotes. */
		__be32 masq = e->in_ip->saddr, client;

		if (kp_addr_to_v4(rv->peer.client_addr, &client))
			return 0;
		if (pkt->ip->daddr == masq)
			kp_ip_set_addr(pkt->ip, &pkt->ip->daddr, client);
		kp_icmp_inner_addr(e, &e->in_ip->saddr, client);
	}
	kp_icmp_inner_addr(e, &e->in_ip->daddr, vip);
	kp_icmp_inner_port(e, &e->in_ports[1], rv->vip_port);
	kp_icmp_inner_port(e, &e->in_ports[0], rv->client_port);
	return rv->vip_id ? rv->vip_id : 1;
}

/* An error about a reply kpbpf SNATed (it quotes VIP:port -> client:port), on its way to the VIP:
 * the quote becomes backend:port -> client:port' and the outer destination the backend.
 * Returns the VIP id, or 0. */
static __always_inline __u32 kp_icmp_to_backend(struct kp_pkt *pkt, struct kp_icmp_err *e,
						const struct kp_config *cfg, __u64 now)
{
	struct kp_flow_key fk = {};
	struct kp_backend *be;
	struct kp_ct *ct;
	__be32 vip = e->in_ip->saddr;
	__be32 be_addr;

	kp_addr_from_v4(fk.saddr, e->in_ip->daddr);
	kp_addr_from_v4(fk.daddr, vip);
	fk.sport = e->in_ports[1];
	fk.dport = e->in_ports[0];
	fk.proto = e->in_proto;
	ct = bpf_map_lookup_elem(&kp_ct, &fk);
	if (!ct || kp_ct_expired(ct, cfg, now))
		return 0;
	be = kp_ct_backend(ct, 0, &be_addr);
	if (!be)
		return 0;
	if (pkt->ip->daddr == vip)
		kp_ip_set_addr(pkt->ip, &pkt->ip->daddr, be_addr);
	if (ct->flags & KP_CT_F_MASQ) {
		/* The backend knows the client as the masquerade address. */
		__be32 client = e->in_ip->daddr, masq;

		if (kp_addr_to_v4(ct->vip_addr, &masq))
			return 0;
		if (pkt->ip->saddr == client)
			kp_ip_set_addr(pkt->ip, &pkt->ip->saddr, masq);
		kp_icmp_inner_addr(e, &e->in_ip->daddr, masq);
	}
	kp_icmp_inner_addr(e, &e->in_ip->saddr, be_addr);
	kp_icmp_inner_port(e, &e->in_ports[0], be->port);
	kp_icmp_inner_port(e, &e->in_ports[1], ct->client_port);
	return ct->vip_id ? ct->vip_id : 1;
}

#endif /* KP_ICMP_XLATE_H */
