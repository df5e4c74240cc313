/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_nat.h: IPv4 and IPv6 address + L4 port rewrites with incremental checksum updates. */
#ifndef KP_NAT_H
#define KP_NAT_H

#include "kp_shared.h"
#include "kp_parse.h"
#include "kp_csum.h"
#include "kp_l4csum.h"

#define KP_V4MAPPED_PREFIX_LEN 12 /* ::ffff:0:0/96 */
#define KP_V4MAPPED_FF 10         /* offset of the two 0xff bytes */

/* 16-byte address -> IPv4 if it is ::ffff:a.b.c.d; returns 0 on success. */
static __always_inline int kp_addr_to_v4(const __u8 *addr, __be32 *v4)
{
	__u64 lo;
	__u32 mid;

	__builtin_memcpy(&lo, addr, sizeof(lo));
	__builtin_memcpy(&mid, addr + sizeof(lo), sizeof(mid));
	if (lo != 0 || mid != bpf_htonl(0x0000ffff))
		return -1;
	__builtin_memcpy(v4, addr + KP_V4MAPPED_PREFIX_LEN, sizeof(*v4));
	return 0;
}

static __always_inline void kp_addr_from_v4(__u8 *addr, __be32 v4)
{
	__builtin_memset(addr, 0, KP_V4MAPPED_FF);
	addr[KP_V4MAPPED_FF] = 0xff;
	addr[KP_V4MAPPED_FF + 1] = 0xff;
	__builtin_memcpy(addr + KP_V4MAPPED_PREFIX_LEN, &v4, sizeof(v4));
}

/* Rewrites one IPv4 address field and one port field, fixing IP and L4 checksums. A partial
 * L4 field covers only the pseudo-header, so it takes the address change and not the port's;
 * pkt->l4_sum follows the segment (field and port) so kp_l4_csum_finish can complete it. */
static __always_inline void kp_nat_ipv4(struct kp_pkt *pkt, __be32 *addr_field, __be16 *port_field,
					__be32 addr, __be16 port)
{
	struct iphdr *ip = pkt->ip;
	__be32 old_addr = *addr_field;
	__be16 old_port = *port_field;
	__sum16 check = *pkt->l4_csum;
	int none = pkt->proto == IPPROTO_UDP && check == 0; /* UDP without checksum: stays 0 */
	int state = KP_L4_CSUM_COMPLETE;

	/* Fragments are made after the checksum is complete: never partial. */
	if (!none && !pkt->frag_first)
		state = kp_l4_csum_classify(pkt, 0); /* before the addresses change */
	ip->check = kp_csum_replace4(ip->check, old_addr, addr);
	*addr_field = addr;
	*port_field = port;
	if (none)
		return;
	if (state != KP_L4_CSUM_COMPLETE) {
		__sum16 partial = kp_csum_partial_replace4(check, old_addr, addr);

		*pkt->l4_csum = partial;
		pkt->l4_sum += (__u16)~check + (__u16)partial + (__u16)~old_port + (__u16)port;
		pkt->l4_csum_state = state;
		return;
	}
	check = kp_csum_replace4(check, old_addr, addr);
	check = kp_csum_replace2(check, old_port, port);
	if (pkt->proto == IPPROTO_UDP)
		check = kp_udp_csum_fixup(check);
	*pkt->l4_csum = check;
}

/* Rewrites one more port field after kp_nat_ipv4 classified the checksum: a port is not in the
 * pseudo-header, so a partial field stays as it is and only the segment's sum moves. */
static __always_inline void kp_nat_port(struct kp_pkt *pkt, __be16 *port_field, __be16 port)
{
	__be16 old_port = *port_field;
	__sum16 check = *pkt->l4_csum;

	*port_field = port;
	if (pkt->l4_csum_state == KP_L4_CSUM_PARTIAL) {
		pkt->l4_sum += (__u16)~old_port + (__u16)port;
		return;
	}
	if (pkt->l4_csum_state != KP_L4_CSUM_COMPLETE || (pkt->proto == IPPROTO_UDP && check == 0))
		return;
	check = kp_csum_replace2(check, old_port, port);
	if (pkt->proto == IPPROTO_UDP)
		check = kp_udp_csum_fixup(check);
	*pkt->l4_csum = check;
}

/* Rewrites a second address and port after kp_nat_ipv4 classified the checksum (a masqueraded
 * packet has both ends rewritten): the partial field takes the address change, as there. */
static __always_inline void kp_nat_ipv4_more(struct kp_pkt *pkt, __be32 *addr_field, __be16 *port_field,
					     __be32 addr, __be16 port)
{
	struct iphdr *ip = pkt->ip;
	__be32 old_addr = *addr_field;
	__sum16 check = *pkt->l4_csum;

	ip->check = kp_csum_replace4(ip->check, old_addr, addr);
	*addr_field = addr;
	if (pkt->l4_csum_state != KP_L4_CSUM_COMPLETE) {
		__sum16 partial = kp_csum_partial_replace4(check, old_addr, addr);

		*pkt->l4_csum = partial;
		pkt->l4_sum += (__u16)~check + (__u16)partial;
	} else if (!(pkt->proto == IPPROTO_UDP && check == 0)) {
		check = kp_csum_replace4(check, old_addr, addr);
		if (pkt->proto == IPPROTO_UDP)
			check = kp_udp_csum_fixup(check);
		*pkt->l4_csum = check;
	}
	kp_nat_port(pkt, port_field, port);
}

/* A fragment after the first: only its IP header can be rewritten (the L4 header and its checksum
 * are in the first fragment). */
static __always_inline void kp_nat_ipv4_addr(struct iphdr *ip, __be32 *addr_field, __be32 addr)
{
	ip->check = kp_csum_replace4(ip->check, *addr_field, addr);
	*addr_field = addr;
}

/* DNAT: destination := addr:port. */
static __always_inline void kp_dnat_ipv4(struct kp_pkt *pkt, __be32 addr, __be16 port)
{
	kp_nat_ipv4(pkt, &pkt->ip->daddr, &pkt->ports[1], addr, port);
}

/* SNAT of a reply: source := addr:port. */
static __always_inline void kp_snat_ipv4(struct kp_pkt *pkt, __be32 addr, __be16 port)
{
	kp_nat_ipv4(pkt, &pkt->ip->saddr, &pkt->ports[0], addr, port);
}

/* IPv6: an address field of the header and one port, the L4 checksum updated for the pseudo-header
 * (IPv6 has no header checksum). A UDP checksum of 0 is not valid in IPv6 and is computed whole by
 * kp_nat6_done, after every field is rewritten. Partial checksums as kp_nat_ipv4. */
/* Writes a 16-byte address into a packet field word by word, returning ~old + new summed over its
 * words (RFC 1624's terms): no copy of the old address on the stack, which the IPv6 program's
 * call chains have no room for. */
static __always_inline __u32 kp_addr_swap16(__u8 *field, const __u8 *addr)
{
	__u32 delta = 0;
	int i;

#pragma unroll
	for (i = 0; i < KP_ADDR_WORDS16; i++) {
		__u16 o, n;

		__builtin_memcpy(&o, field + 2 * i, sizeof(o));
		__builtin_memcpy(&n, addr + 2 * i, sizeof(n));
		delta += (__u16)~o;
		delta += n;
		__builtin_memcpy(field + 2 * i, &n, sizeof(n));
	}
	return delta;
}

static __always_inline void kp_nat_ipv6(struct kp_pkt *pkt, __u8 *addr_field, __be16 *port_field, const __u8 *addr,
					__be16 port)
{
	__sum16 check = *pkt->l4_csum;
	__be16 old_port = *port_field;
	int state = KP_L4_CSUM_COMPLETE;
	__u32 delta;

	if (pkt->proto == IPPROTO_UDP && check == 0) {
		kp_addr_swap16(addr_field, addr);
		*port_field = port;
		return;
	}
	if (!pkt->frag_first)
		state = kp_l4_csum_classify(pkt, 1);
	delta = kp_addr_swap16(addr_field, addr);
	*port_field = port;
	if (state != KP_L4_CSUM_COMPLETE) {
		__sum16 partial = (__sum16)kp_csum_fold((__u16)check + delta);

		*pkt->l4_csum = partial;
		pkt->l4_sum += (__u16)~check + (__u16)partial + (__u16)~old_port + (__u16)port;
		pkt->l4_csum_state = state;
		return;
	}
	check = (__sum16)~kp_csum_fold((__u16)~check + delta);
	check = kp_csum_replace2(check, old_port, port);
	if (pkt->proto == IPPROTO_UDP)
		check = kp_udp_csum_fixup(check);
	*pkt->l4_csum = check;
}

/* A second IPv6 address and port (masquerade) after kp_nat_ipv6 classified the checksum. */
static __always_inline void kp_nat_ipv6_more(struct kp_pkt *pkt, __u8 *addr_field, __be16 *port_field,
					     const __u8 *addr, __be16 port)
{
	__sum16 check = *pkt->l4_csum;
	__u32 delta = kp_addr_swap16(addr_field, addr);

	if (pkt->l4_csum_state != KP_L4_CSUM_COMPLETE) {
		__sum16 partial = (__sum16)kp_csum_fold((__u16)check + delta);

		*pkt->l4_csum = partial;
		pkt->l4_sum += (__u16)~check + (__u16)partial;
	} else if (!(pkt->proto == IPPROTO_UDP && check == 0)) {
		check = (__sum16)~kp_csum_fold((__u16)~check + delta);
		if (pkt->proto == IPPROTO_UDP)
			check = kp_udp_csum_fixup(check);
		*pkt->l4_csum = check;
	}
	kp_nat_port(pkt, port_field, port);
}

/* After an IPv6 rewrite: a UDP checksum of 0 is computed (a first fragment's covers data kpbpf does
 * not see; it stays 0, as invalid as it came). */
static __always_inline void kp_nat6_done(struct kp_pkt *pkt)
{
	if (pkt->proto == IPPROTO_UDP && *pkt->l4_csum == 0 && !pkt->frag_first)
		kp_udp6_csum_fill(pkt);
}

#endif /* KP_NAT_H */
