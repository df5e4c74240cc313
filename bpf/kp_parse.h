/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_parse.h: cursor parsing of Ethernet, one VLAN tag, IPv4 or IPv6 (with its extension headers)
 * and TCP/UDP; every read checked. */
#ifndef KP_PARSE_H
#define KP_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define KP_ETH_P_8021Q 0x8100
#define KP_ETH_P_8021AD 0x88A8
#define KP_IPV4_MIN_IHL 5
#define KP_TCP_MIN_DOFF 5
#define KP_IP_DF 0x4000
#define KP_IP_MF 0x2000
#define KP_IP_OFFSET 0x1FFF
#define KP_TCP_FLAGS_OFF 13
#define KP_IPV6_HLEN 40
/* Extension headers walked before TCP/UDP; a deeper chain passes untouched (RFC 8200 4.1 orders
 * them: hop-by-hop, destination options, routing, fragment, destination options). */
#define KP_IPV6_MAX_EXT 4
#define KP_IPV6_FRAG_OFFSET 0xFFF8 /* fragment header: offset in 8-byte units, then 2 bits, then M */
#define KP_IPV6_FRAG_MF 0x0001
#define KP_NEXTHDR_HOP 0
#define KP_NEXTHDR_ROUTING 43
#define KP_NEXTHDR_FRAGMENT 44
#define KP_NEXTHDR_DEST 60
#define KP_NEXTHDR_ICMP6 58
#define KP_IPV6_MAX_L4_OFF 512 /* TCP/UDP further into the frame than this passes untouched */

/* One u32 the IPv6 parser stores the L4 offset through (kp_l4_offset). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} kp_l4_off SEC(".maps");

/* Parse results: 0 means a TCP/UDP over IPv4 packet we may handle. */
enum kp_parse_rc {
	KP_PARSE_OK = 0,
	KP_PARSE_NOT_IP = -1,
	KP_PARSE_NOT_L4 = -2,
	KP_PARSE_FRAGMENT = -3,
	KP_PARSE_MALFORMED = -4,
	KP_PARSE_L4_MALFORMED = -5, /* IPv4 is sound, the TCP/UDP header is not; pkt->ports if readable */
	KP_PARSE_ICMP = -6,         /* ICMP (ICMPv6 in kp_parse6); pkt->ip and pkt->l4 are set */
	KP_PARSE_IPV6 = -7,         /* kp_parse: an IPv6 frame, for kp_parse6 (the IPv6 program) */
	KP_PARSE_NOT_OURS = -8,     /* IPv6 to or from an IPv4-mapped address: no VIP, no connection of kpbpf's */
};

/* IPv6 fragment header (RFC 8200 4.5). */
struct kp_frag6_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

/* 802.1Q/802.1ad tag after the MAC addresses (not in the uapi headers). */
struct kp_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* Where the headers of one packet are; pointers are valid up to data_end. */
struct kp_pkt {
	struct xdp_md *ctx; /* for the global functions, which see the packet only through it */
	void *data_end;
	struct ethhdr *eth; /* the frame's start (data) */
	union {
		struct iphdr *ip;     /* IPv4 frames */
		struct ipv6hdr *ip6;  /* IPv6 frames (the IPv6 program's) */
	};
	/* One pointer (a frame byte saved for the call chains' stack): the header after IPv4 (and its
	 * options) or IPv6 (and its extension headers) of an ICMP packet, or the ports of TCP and UDP
	 * (sport, dport, their first 4 bytes), NULL when they are not readable. */
	union {
		void *l4;
		__be16 *ports;
	};
	__sum16 *l4_csum;
	__u64 l4_sum;    /* KP_L4_CSUM_PARTIAL only: ones' complement sum of the segment as it is now */
	__u64 now;       /* kp_now() when the packet arrived */
	__u16 mtu;       /* KP_TX_FRAG_NEEDED: the route's MTU */
	__u16 len;       /* frame length (no multi-buffer frames: at most a jumbo frame) */
	__be32 frag_id;  /* IPv6 fragments: the fragment header's identification */
	__u16 l4_len;    /* bytes from the TCP/UDP header to the end of the IP datagram */
	__u8 proto;      /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 vlan;       /* 1 if the frame carried a VLAN tag */
	__u8 l4_csum_state; /* enum kp_l4_csum_state (kp_l4csum.h), set by the NAT */
	__u8 tcp_flags;  /* TCP only: FIN, SYN, RST, PSH, ACK, URG... (byte 13 of the header) */
	__u8 frag_first; /* the first fragment of a datagram (MF set, offset 0): its L4 checksum
	                    covers the whole datagram, so only incremental updates apply */
};

/* Ethernet and at most one VLAN tag; returns the inner EtherType (host order) or < 0. */
static __always_inline int kp_parse_eth(struct kp_pkt *pkt, void **cursor)
{
	struct ethhdr *eth = pkt->eth;
	__u16 proto;

	if ((void *)(eth + 1) > pkt->data_end)
		return KP_PARSE_MALFORMED;
	pkt->eth = eth;
	*cursor = eth + 1;
	proto = bpf_ntohs(eth->h_proto);
	if (proto == KP_ETH_P_8021Q || proto == KP_ETH_P_8021AD) {
		struct kp_vlan_hdr *vh = *cursor;

		if ((void *)(vh + 1) > pkt->data_end)
			return KP_PARSE_MALFORMED;
		pkt->vlan = 1;
		*cursor = vh + 1;
		proto = bpf_ntohs(vh->proto);
	}
	return proto;
}

/* Whether a datagram of l3_len bytes is longer than the frame holds: cut short on the way, it is
 * discarded, as a router does (RFC 1812 5.2.2; the kernel counts it in InTruncatedPkts), rather than
 * have its L4 read, rewritten and checksummed past its real end (found by the data path's fuzzer).
 * A frame may be longer than its datagram (Ethernet padding). */
static __always_inline int kp_cut_short(const struct kp_pkt *pkt, __u32 l3_len)
{
	return ETH_HLEN + (pkt->vlan ? sizeof(struct kp_vlan_hdr) : 0) + l3_len > pkt->len;
}

/* IPv4 header with options; returns the L4 protocol or < 0. */
static __always_inline int kp_parse_ipv4(struct kp_pkt *pkt, void **cursor)
{
	struct iphdr *ip = *cursor;
	__u32 hlen;

	if ((void *)(ip + 1) > pkt->data_end)
		return KP_PARSE_MALFORMED;
	if (ip->version != 4 || ip->ihl < KP_IPV4_MIN_IHL)
		return KP_PARSE_MALFORMED;
	hlen = ip->ihl * 4;
	if ((void *)ip + hlen > pkt->data_end || bpf_ntohs(ip->tot_len) < hlen)
		return KP_PARSE_MALFORMED;
	if (kp_cut_short(pkt, bpf_ntohs(ip->tot_len)))
		return KP_PARSE_MALFORMED;
	pkt->ip = ip;
	pkt->l4_len = bpf_ntohs(ip->tot_len) - hlen;
	*cursor = (void *)ip + hlen;
	/* A first fragment carries the ports and is handled as a packet; the others cannot be. */
	if (ip->frag_off & bpf_htons(KP_IP_OFFSET))
		return KP_PARSE_FRAGMENT;
	pkt->frag_first = !!(ip->frag_off & bpf_htons(KP_IP_MF));
	return ip->protocol;
}

/* TCP or UDP header at the cursor; checks the IP total length covers it. A header that is there
 * but inconsistent (data offset < 5, longer than the datagram) is KP_PARSE_L4_MALFORMED with
 * pkt->ports set, so the caller can tell transit traffic (passed, as a router would) from VIP
 * traffic (dropped). */
static __always_inline int kp_parse_l4(struct kp_pkt *pkt, void *cursor, __u8 proto, const int v6)
{
	__u32 l3_len = pkt->l4_len;

	pkt->proto = proto;
	pkt->tcp_flags = 0;
	pkt->l4 = cursor;
	if (proto == (v6 ? KP_NEXTHDR_ICMP6 : IPPROTO_ICMP))
		return KP_PARSE_ICMP;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return KP_PARSE_NOT_L4;
	pkt->ports = NULL;
	if (cursor + 2 * sizeof(__be16) <= pkt->data_end && l3_len >= 2 * sizeof(__be16))
		pkt->ports = cursor;
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = cursor;
		__u32 hlen;

		if ((void *)(th + 1) > pkt->data_end)
			return KP_PARSE_L4_MALFORMED;
		hlen = th->doff * 4;
		if (th->doff < KP_TCP_MIN_DOFF || cursor + hlen > pkt->data_end || l3_len < hlen)
			return KP_PARSE_L4_MALFORMED;
		pkt->l4_csum = &th->check;
		pkt->tcp_flags = ((__u8 *)th)[KP_TCP_FLAGS_OFF];
	} else {
		struct udphdr *uh = cursor;

		if ((void *)(uh + 1) > pkt->data_end || l3_len < sizeof(*uh))
			return KP_PARSE_L4_MALFORMED;
		pkt->l4_csum = &uh->check;
	}
	pkt->ports = cursor; /* again: the verifier does not carry the check above this far */
	return KP_PARSE_OK;
}

/* The frame's bounds and Ethernet header into pkt; returns the inner EtherType or < 0. */
static __always_inline int kp_parse_start(struct xdp_md *ctx, struct kp_pkt *pkt, void **cursor)
{
	pkt->ctx = ctx;
	pkt->eth = (void *)(long)ctx->data;
	pkt->data_end = (void *)(long)ctx->data_end;
	pkt->len = pkt->data_end - (void *)pkt->eth;
	pkt->vlan = 0;
	pkt->frag_first = 0;
	pkt->frag_id = 0;
	pkt->l4_csum_state = 0; /* KP_L4_CSUM_COMPLETE */
	return kp_parse_eth(pkt, cursor);
}

/* Fills pkt for a TCP/UDP over IPv4 frame; writes nothing to the packet. pkt->ip is set from
 * KP_PARSE_FRAGMENT and KP_PARSE_L4_MALFORMED on. */
static __always_inline int kp_parse(struct xdp_md *ctx, struct kp_pkt *pkt)
{
	void *cursor;
	int rc;

	rc = kp_parse_start(ctx, pkt, &cursor);
	if (rc < 0)
		return rc;
	if (rc == ETH_P_IPV6)
		return KP_PARSE_IPV6;
	if (rc != ETH_P_IP)
		return KP_PARSE_NOT_IP;
	rc = kp_parse_ipv4(pkt, &cursor);
	if (rc < 0)
		return rc;
	return kp_parse_l4(pkt, cursor, rc, 0);
}

/* The L4 header at off, as a pointer the verifier knows only to be within KP_IPV6_MAX_L4_OFF: every
 * chain of extension headers is a path of its own to the verifier, with its own pointer offsets, and
 * the whole program after it would be verified once per path (past the 1M instruction limit). Stored
 * and read back through a map value, the offset is one unknown number on every path, so they merge. */
static __always_inline void *kp_l4_offset(const struct kp_pkt *pkt, __u32 off)
{
	__u32 zero = 0;
	__u32 *slot = bpf_map_lookup_elem(&kp_l4_off, &zero);

	if (!slot)
		return NULL;
	*(volatile __u32 *)slot = off;
	off = *(volatile __u32 *)slot;
	if (off > KP_IPV6_MAX_L4_OFF)
		return NULL;
	return (void *)pkt->eth + off;
}

/* IPv6 header and its extension headers up to TCP/UDP/ICMPv6; returns that protocol or < 0. A later
 * fragment is KP_PARSE_FRAGMENT (pkt->frag_id and pkt->proto set); a packet with a routing header
 * that has segments left is not addressed to its final destination yet: KP_PARSE_NOT_L4. */
/* ::ffff:0:0/96: an IPv4 address in IPv6's 16 bytes, which is how kpbpf keys IPv4 VIPs and
 * connections. On an IPv6 wire it is nobody's address (RFC 4291 2.5.5.2). */
static __always_inline int kp_v4mapped(const struct in6_addr *a)
{
	__u64 lo;
	__u32 mid;

	__builtin_memcpy(&lo, a, sizeof(lo));
	__builtin_memcpy(&mid, (const __u8 *)a + sizeof(lo), sizeof(mid));
	return lo == 0 && mid == bpf_htonl(0x0000ffff);
}

static __always_inline int kp_parse_ipv6(struct kp_pkt *pkt, void **cursor)
{
	struct ipv6hdr *ip6 = *cursor;
	void *l3, *cur;
	__u32 plen, ext;
	__u8 next;
	int i;

	if ((void *)(ip6 + 1) > pkt->data_end || ip6->version != 6)
		return KP_PARSE_MALFORMED;
	/* Its 16 bytes would match the IPv4 VIP or connection they key: passed untouched as a router
	 * would, before its fragments or L4 are looked at (found by the data path's fuzzer). */
	if (kp_v4mapped(&ip6->saddr) || kp_v4mapped(&ip6->daddr))
		return KP_PARSE_NOT_OURS;
	pkt->ip6 = ip6;
	plen = bpf_ntohs(ip6->payload_len);
	if (kp_cut_short(pkt, sizeof(*ip6) + plen))
		return KP_PARSE_MALFORMED;
	next = ip6->nexthdr;
	l3 = (void *)(ip6 + 1);
	cur = l3;
#pragma unroll
	for (i = 0; i < KP_IPV6_MAX_EXT; i++) {
		if (next == KP_NEXTHDR_FRAGMENT) {
			struct kp_frag6_hdr *fh = cur;

			if ((void *)(fh + 1) > pkt->data_end)
				return KP_PARSE_MALFORMED;
			next = fh->nexthdr;
			pkt->frag_id = fh->id;
			cur = fh + 1;
			if (fh->frag_off & bpf_htons(KP_IPV6_FRAG_OFFSET)) {
				pkt->proto = next;
				return KP_PARSE_FRAGMENT;
			}
			pkt->frag_first = !!(fh->frag_off & bpf_htons(KP_IPV6_FRAG_MF));
		} else if (next == KP_NEXTHDR_HOP || next == KP_NEXTHDR_ROUTING || next == KP_NEXTHDR_DEST) {
			__u8 *h = cur;

			if ((void *)(h + 8) > pkt->data_end)
				return KP_PARSE_MALFORMED;
			if (next == KP_NEXTHDR_ROUTING && h[3] != 0)
				return KP_PARSE_NOT_L4; /* segments left: not at its destination yet */
			next = h[0];
			cur = h + (h[1] + 1) * 8;
		} else {
			break;
		}
	}
	if (next == KP_NEXTHDR_HOP || next == KP_NEXTHDR_ROUTING || next == KP_NEXTHDR_DEST || next == KP_NEXTHDR_FRAGMENT)
		return KP_PARSE_NOT_L4; /* a longer chain than kpbpf walks */
	ext = cur - l3;
	if (ext > plen)
		return KP_PARSE_MALFORMED;
	pkt->l4_len = plen - ext;
	*cursor = kp_l4_offset(pkt, cur - (void *)pkt->eth);
	if (!*cursor)
		return KP_PARSE_NOT_L4;
	return next;
}

/* kp_parse for the IPv6 program: the frame kp_parse found to be IPv6. */
static __always_inline int kp_parse6(struct xdp_md *ctx, struct kp_pkt *pkt)
{
	void *cursor;
	int rc;

	rc = kp_parse_start(ctx, pkt, &cursor);
	if (rc < 0)
		return rc;
	if (rc != ETH_P_IPV6)
		return KP_PARSE_NOT_IP;
	rc = kp_parse_ipv6(pkt, &cursor);
	if (rc < 0)
		return rc;
	return kp_parse_l4(pkt, cursor, rc, 1);
}

#endif /* KP_PARSE_H */
