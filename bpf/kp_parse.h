/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_parse.h: cursor parsing of Ethernet, one VLAN tag, IPv4 and TCP/UDP; every read checked. */
#ifndef KP_PARSE_H
#define KP_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
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

/* Parse results: 0 means a TCP/UDP over IPv4 packet we may handle. */
enum kp_parse_rc {
	KP_PARSE_OK = 0,
	KP_PARSE_NOT_IP = -1,
	KP_PARSE_NOT_L4 = -2,
	KP_PARSE_FRAGMENT = -3,
	KP_PARSE_MALFORMED = -4,
	KP_PARSE_L4_MALFORMED = -5, /* IPv4 is sound, the TCP/UDP header is not; pkt->ports if readable */
	KP_PARSE_ICMP = -6,         /* ICMP; pkt->ip and pkt->l4 are set */
};

/* 802.1Q/802.1ad tag after the MAC addresses (not in the uapi headers). */
struct kp_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* Where the headers of one packet are; pointers are valid up to data_end. */
struct kp_pkt {
	void *data;
	void *data_end;
	struct ethhdr *eth;
	struct iphdr *ip;
	void *l4;        /* the header after IPv4 (and its options) */
	__be16 *ports;   /* sport, dport: the first 4 bytes of TCP and UDP */
	__sum16 *l4_csum;
	__u64 l4_sum;    /* KP_L4_CSUM_PARTIAL only: ones' complement sum of the segment as it is now */
	__u64 now;       /* kp_now() when the packet arrived */
	__u32 mtu;       /* KP_TX_FRAG_NEEDED: the route's MTU */
	__u32 len;       /* frame length */
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
	struct ethhdr *eth = pkt->data;
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
	pkt->ip = ip;
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
static __always_inline int kp_parse_l4(struct kp_pkt *pkt, void *cursor, __u8 proto)
{
	__u32 l3_len = bpf_ntohs(pkt->ip->tot_len) - pkt->ip->ihl * 4;

	pkt->ports = NULL;
	pkt->proto = proto;
	pkt->tcp_flags = 0;
	pkt->l4 = cursor;
	if (proto == IPPROTO_ICMP)
		return KP_PARSE_ICMP;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return KP_PARSE_NOT_L4;
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

/* Fills pkt for a TCP/UDP over IPv4 frame; writes nothing to the packet. pkt->ip is set from
 * KP_PARSE_FRAGMENT and KP_PARSE_L4_MALFORMED on. */
static __always_inline int kp_parse(struct xdp_md *ctx, struct kp_pkt *pkt)
{
	void *cursor;
	int rc;

	pkt->data = (void *)(long)ctx->data;
	pkt->data_end = (void *)(long)ctx->data_end;
	pkt->len = pkt->data_end - pkt->data;
	pkt->vlan = 0;
	pkt->frag_first = 0;
	pkt->l4_csum_state = 0; /* KP_L4_CSUM_COMPLETE */
	rc = kp_parse_eth(pkt, &cursor);
	if (rc < 0)
		return rc;
	if (rc != ETH_P_IP)
		return KP_PARSE_NOT_IP;
	rc = kp_parse_ipv4(pkt, &cursor);
	if (rc < 0)
		return rc;
	return kp_parse_l4(pkt, cursor, rc);
}

#endif /* KP_PARSE_H */
