/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_shared.h: the only definitions shared by the XDP program and the TypeScript control plane.
 *
 * Rules: fixed-width fields, network byte order marked __be16/__be32, explicit padding,
 * no bitfields, a _Static_assert on every size. test/maps/btf-layout.test.ts checks each
 * struct's size and field offsets against the compiled object's BTF, and src/maps/codecs.ts
 * must agree with it. Change a layout only together with a _v2 map name.
 */
#ifndef KP_SHARED_H
#define KP_SHARED_H

#include <linux/types.h>

/* The meaning of the pinned maps: bumped whenever a shared struct or a map's use changes in a way a
 * size check cannot see (a field reinterpreted, a flag moved). A kpbpf of another version refuses
 * pins of this one; test/maps/btf-layout.test.ts keeps src/maps/codecs.ts LAYOUT_VERSION equal. */
#define KP_LAYOUT_VERSION 6

/* Addresses are always 16 bytes: IPv6 as is, IPv4 as ::ffff:a.b.c.d (RFC 4291 2.5.5.2). */
#define KP_ADDR_LEN 16

/* Map sizes; each is overridable at build time (-DKP_MAX_VIPS=...). The connection table
 * size ("buckets") is set at load time by the loader, this is only its default. */
#ifndef KP_MAX_VIPS
#define KP_MAX_VIPS 65536
#endif
#ifndef KP_MAX_VIP_PREFIXES
#define KP_MAX_VIP_PREFIXES 4096
#endif
#ifndef KP_MAX_BACKENDS
#define KP_MAX_BACKENDS 262144
#endif
#ifndef KP_DEFAULT_BUCKETS
#define KP_DEFAULT_BUCKETS 131072 /* connections; kp_ct holds two entries per connection */
#endif
#ifndef KP_MAX_FRAGS
#define KP_MAX_FRAGS 16384 /* datagrams whose later fragments are still expected */
#endif
#define KP_FRAG_TIMEOUT_S 30 /* Linux's ipfrag_time */
#ifndef KP_MAX_NEXTHOPS
#define KP_MAX_NEXTHOPS 65536 /* destinations whose FIB result is cached */
#endif
#define KP_NEXTHOP_TTL_MS 1000 /* a route or neighbour change takes effect within this */
#ifndef KP_MAX_ADDRS
#define KP_MAX_ADDRS (KP_MAX_VIPS + KP_MAX_BACKENDS)
#define KP_MAX_SRC_RANGES 65536 /* allowed source prefixes, all VIPs together */
#endif
#ifndef KP_MAX_AFFINITY
#define KP_MAX_AFFINITY 131072 /* (VIP, client) pairs with session affinity */
#endif
#ifndef KP_MAX_SOCKS
#define KP_MAX_SOCKS 131072 /* node sockets' translations (two entries each) */
#endif
#ifndef KP_MAX_TX_PORTS
#define KP_MAX_TX_PORTS 256
#endif

/* Slots of kp_progs, the programs kp_xdp tail-calls. */
#define KP_PROG_IPV6 0  /* kp_xdp6: every IPv6 frame */
#define KP_MAX_PROGS 4

/* Maglev tables: prime sizes between these bounds (VPP's new_len). */
#define KP_MAGLEV_MIN_LEN 7
#define KP_MAGLEV_MAX_LEN 131071
#define KP_MAGLEV_DEFAULT_LEN 1021

/* The shared Maglev store (kp_maglev_store) holds backend ids in chunks of this many words. */
#define KP_MAGLEV_CHUNK 16

/* A kp_maglev_ref value: a table's first word in the store (low half) and its length (high half),
 * read and written as one 8-byte word so that the two always belong together. */
#define KP_MAGLEV_REF_FIRST(r) ((__u32)(r))
#define KP_MAGLEV_REF_LEN(r) ((__u32)((r) >> 32))
/* kp_maglev_ref key of a VIP's table of local backends only (traffic policy local) */
#define KP_MAGLEV_LOCAL KP_MAX_VIPS

/* Backend id 0 is never allocated, so a zeroed slot means "no backend". */
#define KP_BACKEND_NONE 0

/* A connection tuple: key of kp_ct. Forward entries hold the packet's tuple as the client sent
 * it (dst = VIP); reply entries hold the tuple of the backend's replies (src = backend, dst =
 * client) with dir = KP_DIR_REPLY, so the two kinds can never collide. */
struct kp_flow_key {
	__u8 saddr[KP_ADDR_LEN];
	__u8 daddr[KP_ADDR_LEN];
	__be16 sport;
	__be16 dport;
	__u8 proto;     /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 dir;       /* KP_DIR_*; 0 in forward keys, so Maglev hashes the plain 5-tuple */
	__u8 pad[2];
};
_Static_assert(sizeof(struct kp_flow_key) == 40, "kp_flow_key size");

#define KP_DIR_ORIG 0
#define KP_DIR_REPLY 1

/* Connection states (conntrack's names); each has its idle timeout in kp_config.timeout_s. */
enum kp_ct_state {
	KP_CT_NONE = 0,
	KP_CT_SYN_SENT = 1,
	KP_CT_SYN_RECV = 2,
	KP_CT_ESTABLISHED = 3,
	KP_CT_FIN_WAIT = 4,
	KP_CT_CLOSE_WAIT = 5,
	KP_CT_LAST_ACK = 6,
	KP_CT_TIME_WAIT = 7,
	KP_CT_CLOSE = 8,
	KP_CT_UDP = 9,        /* UDP, no reply seen yet */
	KP_CT_UDP_STREAM = 10, /* UDP that has seen a reply */
	KP_CT_STATES = 12,
};

/* kp_ct.flags */
#define KP_CT_F_REPLY 0x1     /* a reply entry: points at its forward entry */
#define KP_CT_F_FIN_ORIG 0x2  /* forward: the client sent FIN */
#define KP_CT_F_FIN_REPLY 0x4 /* forward: the backend sent FIN */
#define KP_CT_F_LOOSE 0x8     /* forward: picked up mid-connection (no SYN seen) */
#define KP_CT_F_REMAP 0x10    /* forward: the client port was remapped to avoid a collision */
#define KP_CT_F_HOP_REDIRECT 0x20 /* reply: its next hop may be redirected to (kp_tx_ports) */
#define KP_CT_F_MASQ 0x40     /* masqueraded: the backend sees vip_addr (forward) as the client,
                                 and the reply entry keeps the client's address in peer */
#define KP_CT_F_XLATE 0x80    /* across families (NAT46, NAT64): the client's and the backend's
                                 packets are of different families, and always KP_CT_F_MASQ */

/* The tail of a reply entry: the cached next hop of its replies, or, for a masqueraded connection
 * (KP_CT_F_MASQ), the client's own address, which the backend never saw; those replies look their
 * next hop up by destination instead. */
struct kp_ct_hop {
	__u32 ifindex;
	__u8 dmac[6];
	__u8 smac[6];
};
union kp_ct_peer {
	struct kp_ct_hop hop;
	__u8 client_addr[KP_ADDR_LEN];
};

/* Value of kp_ct. A forward entry is the connection record: backend, state and the last packet
 * seen in either direction. A reply entry names its forward entry (VIP address and port and the
 * client's own port) and the backend pick it belongs to, so a stale one is recognised. */
struct kp_ct {
	/* What a forward packet reads and writes comes first, so it shares cache lines with the key. */
	__u64 last_seen_ns;   /* kp_now() of the last packet: forward records the
	                         client's (and slow-path replies'), reply entries the backend's */
	__u32 backend_id;     /* index into kp_backends */
	__u32 backend_gen;    /* kp_backend.gen when chosen; a mismatch means re-select */
	__u32 vip_id;         /* for counters and listing */
	__be16 client_port;   /* forward: the source port the backend sees (remapped on collision);
	                         reply: the client's own source port */
	__u8 state;           /* enum kp_ct_state; in a reply entry a mirror of its forward record's */
	__u8 flags;           /* KP_CT_F_* */
	__be16 vip_port;      /* reply entries */
	/* Reply entries: the next hop of the connection's replies (toward the client), copied from
	 * kp_nexthop, so a reply needs no lookup of its own; refreshed after KP_NEXTHOP_TTL_MS. */
	__u16 hop_mtu;
	__u32 hop_checked;    /* kp_now() >> 20 (about ms) when copied; 0 = never */
	__u8 vip_addr[KP_ADDR_LEN]; /* reply entries: the address the client used; forward records
	                               with KP_CT_F_MASQ: the source address the backend sees */
	union kp_ct_peer peer;
};
_Static_assert(sizeof(struct kp_ct) == 64, "kp_ct size");

/* Key of kp_frags: a datagram being fragmented, as its fragments arrive (before any NAT). */
struct kp_frag_key {
	__u8 saddr[KP_ADDR_LEN];
	__u8 daddr[KP_ADDR_LEN];
	__be32 id;      /* the IPv4 identification (16 bits), or IPv6's fragment id */
	__u8 proto;
	__u8 pad[3];
};
_Static_assert(sizeof(struct kp_frag_key) == 40, "kp_frag_key size");

/* Value of kp_frags: the ports of the datagram, from its first fragment. */
struct kp_frag {
	__be16 sport;
	__be16 dport;
	__u32 pad;
	__u64 seen_ns;  /* when the first fragment passed; older than KP_FRAG_TIMEOUT_S is unknown */
};
_Static_assert(sizeof(struct kp_frag) == 16, "kp_frag size");

/* Value of kp_addrs (key: a 16-byte address): what kpbpf knows the address as. */
#define KP_ADDR_F_VIP 0x1     /* the address of an exact VIP */
#define KP_ADDR_F_BACKEND 0x2 /* the address of a backend (active or draining) */

/* A next hop as bpf_fib_lookup gives it. */
struct kp_hop {
	__u32 ifindex;        /* egress */
	__u8 dmac[6];
	__u8 smac[6];
	__u16 mtu;            /* the route's MTU: a larger DF packet needs fragmentation */
	__u8 redirect;        /* ifindex is in kp_tx_ports: XDP_REDIRECT, else XDP_PASS */
	__u8 pad;
};
_Static_assert(sizeof(struct kp_hop) == 20, "kp_hop size");

/* Value of kp_nexthop (key: a 16-byte destination address): a FIB result, reused for a second. */
struct kp_nexthop {
	struct kp_hop hop;
	__u32 pad;
	__u64 checked_ns;     /* when bpf_fib_lookup gave it; older than KP_NEXTHOP_TTL_MS is looked up again */
};
_Static_assert(sizeof(struct kp_nexthop) == 32, "kp_nexthop size");

/* Key of kp_src_ranges (LPM trie): a VIP's allowed source prefix. prefixlen counts the 32 bits of
 * vip_id first (always matched), then address bits of the v4-mapped or IPv6 address. */
struct kp_src_key {
	__u32 prefixlen;
	__u32 vip_id;
	__u8 addr[KP_ADDR_LEN];
};
_Static_assert(sizeof(struct kp_src_key) == 24, "kp_src_key size");

/* Key of kp_vips (exact match). */
struct kp_vip_key {
	__u8 addr[KP_ADDR_LEN];
	__be16 port;
	__u8 proto;
	__u8 pad;
};
_Static_assert(sizeof(struct kp_vip_key) == 20, "kp_vip_key size");

/* Key of kp_vip_pfx (LPM trie). proto and port come first so that they are always part of
 * the match: prefixlen = 32 + the address prefix length in the 128-bit space
 * (an IPv4 /8 is 32 + 96 + 8). */
struct kp_vip_pfx_key {
	__u32 prefixlen;
	__u8 proto;
	__u8 pad;
	__be16 port;
	__u8 addr[KP_ADDR_LEN];
};
_Static_assert(sizeof(struct kp_vip_pfx_key) == 24, "kp_vip_pfx_key size");

/* VIP flags */
#define KP_VIP_F_PREFIX 0x1   /* stored in kp_vip_pfx, not kp_vips */
#define KP_VIP_F_NODEPORT 0x2 /* the (node address, node port) entry of a VIP with a node port */
#define KP_VIP_F_SRC_RANGES 0x4 /* new connections only from the VIP's prefixes in kp_src_ranges */
#define KP_VIP_F_LB 0x8         /* a LoadBalancer ingress IP (for listing; forwards as a cluster IP) */
#define KP_VIP_F_EXTERNAL 0x10  /* an external IP (for listing; forwards as a cluster IP) */
#define KP_VIP_F_LOCAL 0x20     /* this entry picks from the VIP's local-only table (KP_MAGLEV_LOCAL);
                                   without a local endpoint the packet is dropped, not rejected */
#define KP_VIP_F_ETP_LOCAL 0x40 /* externalTrafficPolicy local (for listing: the entries say LOCAL) */
#define KP_VIP_F_ITP_LOCAL 0x80 /* internalTrafficPolicy local (for listing) */
#define KP_VIP_F_AFFINITY 0x200 /* session affinity ClientIP: a client's new connections go to its last
                                   backend while kp_vip_affinity[id] seconds have not passed */
#define KP_VIP_F_AUTO_LEN 0x400 /* table_len follows the backend count ("new_len auto"); control plane
                                   only, the data path ignores it */
#define KP_VIP_F_XLATE 0x800   /* the VIP's backends are of the other family: NAT46 (an IPv4 VIP) or NAT64
                                   (an IPv6 VIP); every entry of the VIP carries it */
#define KP_VIP_F_MASQ 0x100     /* an external entry under externalTrafficPolicy cluster: a connection to
                                   a backend on another node is masqueraded (node port entries to the
                                   node address dialled, others to kp_masq's address) */

/* Value of kp_vips and kp_vip_pfx. */
struct kp_vip {
	__u32 id;        /* index into kp_maglev_ref and kp_vip_stats_v2; 0 is never used */
	__u32 table_len; /* size of the VIP's Maglev tables (prime); control plane only: the data path
	                    reads the length published with each table in kp_maglev_ref */
	__u16 flags;     /* KP_VIP_F_* */
	__be16 target_port; /* the VIP's target port, kept for listing (backends carry their own) */
	__be16 node_port;   /* 0, or the VIP's node port: it also has an entry (node address, node_port)
	                       per node address, flagged KP_VIP_F_NODEPORT, with the same id */
	__u16 pad;
};
_Static_assert(sizeof(struct kp_vip) == 16, "kp_vip size");

#define KP_BACKEND_F_LOCAL 0x1 /* on this node: eligible under a local traffic policy */
#define KP_BACKEND_F_TERMINATING 0x2 /* serving but terminating: in the table only while no ready backend is (control plane) */

/* Backend states */
#define KP_BACKEND_FREE 0     /* slot unused */
#define KP_BACKEND_ACTIVE 1   /* in its VIP's Maglev table */
#define KP_BACKEND_DRAINING 2 /* removed from the table; existing flows still go to it */

/* Value of kp_backends (array indexed by backend id). One entry per (VIP, address, port). */
struct kp_backend {
	__u8 addr[KP_ADDR_LEN];
	__be16 port;     /* DNAT destination port (the VIP's target port) */
	__u8 state;      /* KP_BACKEND_* */
	__u8 flags;      /* KP_BACKEND_F_*, for the control plane */
	__u32 gen;       /* bumped when the slot is flushed or re-used: flows pinned to an old
	                    gen re-select in O(1) without touching the flow table */
	__u32 vip_id;    /* owner, for listing and garbage collection */
	__u16 weight;    /* Maglev weight, 1 by default */
	__u16 pad2;
};
_Static_assert(sizeof(struct kp_backend) == 32, "kp_backend size");

/* Value of kp_config (array with one entry, key 0): runtime knobs. */
struct kp_config {
	__u32 hash_seed;       /* seed of the 5-tuple hash that indexes Maglev tables */
	__u32 n_vip_prefixes;  /* entries in kp_vip_pfx; 0 skips the LPM lookup */
	__u32 flags;           /* KP_CONF_F_* */
	__u32 hop_gen;         /* bumped by the control plane when redirect targets change: drops kp_be_hops */
	__u32 timeout_s[KP_CT_STATES]; /* idle timeout per enum kp_ct_state; 0 = never expires */
};
_Static_assert(sizeof(struct kp_config) == 64, "kp_config size");

#define KP_CONF_F_NO_FIB 0x1 /* never redirect: always XDP_PASS after a rewrite */
/* User space's own: an apply is writing VIPs and backends whose Maglev tables it has not published
 * yet. Set when it begins and cleared once they are published; found set, the writer crashed in
 * between, and the next apply publishes every table (the data path never reads it). */
#define KP_CONF_F_TABLES_PENDING 0x2

/* Value of kp_settings (one entry): control-plane settings kept with the pins, so that every kpbpf
 * process applies the same ones. The data path never reads them. */
#define KP_NODEPORT_PREFIXES 16
struct kp_nodeport_prefix {
	__u8 addr[KP_ADDR_LEN]; /* v4-mapped or IPv6 */
	__u32 len128;           /* prefix length over the 16-byte address */
};
struct kp_settings {
	__u16 nodeport_min;     /* node port range; 0 = the default, 30000-32767 */
	__u16 nodeport_max;
	__u32 n_nodeport_prefixes; /* node addresses are limited to these prefixes; 0 = every address */
	struct kp_nodeport_prefix nodeport_prefixes[KP_NODEPORT_PREFIXES];
};
_Static_assert(sizeof(struct kp_settings) == 8 + 20 * KP_NODEPORT_PREFIXES, "kp_settings size");

/* Value of kp_masq (one entry): where masqueraded connections come from. The source port is
 * allocated from [port_min, port_max], a range the node's own sockets never connect from (outside
 * ip_local_port_range and the node port range), so a masqueraded reply can never be a reply to
 * the node's own connection. */
#define KP_MASQ_PORT_MIN 1024  /* below the node port range and Linux's ephemeral range (32768-60999) */
#define KP_MASQ_PORT_MAX 29999
struct kp_masq {
	__u8 addr[KP_ADDR_LEN]; /* masquerade address of LoadBalancer/external IPs and hairpin
	                           connections; all zero: those keep the client's address */
	__u16 port_min;         /* 0: KP_MASQ_PORT_MIN */
	__u16 port_max;         /* 0: KP_MASQ_PORT_MAX */
	__u32 pad;
};
_Static_assert(sizeof(struct kp_masq) == 24, "kp_masq size");
#define KP_MASQ_V4 0 /* kp_masq's keys: one address per family; the port range is the IPv4 entry's */
#define KP_MASQ_V6 1
#define KP_MASQ_NAT46 2 /* addr: the /96 prefix NAT46 embeds a client's IPv4 address in (RFC 6052);
                           all zero: 64:ff9b::/96. NAT64 connections come from KP_MASQ_V4's address. */
#define KP_MASQ_ENTRIES 3

/* Key of kp_affinity: a client of a VIP with session affinity (Kubernetes' ClientIP). */
struct kp_affinity_key {
	__u32 vip_id;
	__u32 pad;
	__u8 addr[KP_ADDR_LEN]; /* the client's address */
};
_Static_assert(sizeof(struct kp_affinity_key) == 24, "kp_affinity_key size");

/* Value of kp_affinity: the backend of the client's last new connection, and when. */
struct kp_affinity {
	__u32 backend_id;
	__u32 backend_gen;
	__u64 last_ns;          /* kp_now() of that connection's first packet */
};
_Static_assert(sizeof(struct kp_affinity) == 16, "kp_affinity size");

/* Key of kp_sock: the node's own socket (cookie) talking to an address. dir KP_DIR_ORIG: addr and
 * port are the VIP the socket dialled (value: the backend it was given); KP_DIR_REPLY: the backend
 * (value: the VIP to show the socket instead, on recvmsg and getpeername). */
struct kp_sock_key {
	__u64 cookie;           /* bpf_get_socket_cookie */
	__u8 addr[KP_ADDR_LEN];
	__be16 port;
	__u8 proto;
	__u8 dir;
	__u32 pad;
};
_Static_assert(sizeof(struct kp_sock_key) == 32, "kp_sock_key size");

/* Value of kp_sock. */
struct kp_sock_nat {
	__u8 addr[KP_ADDR_LEN]; /* ORIG: the backend's address; REPLY: the VIP's */
	__be16 port;            /* and port */
	__u16 pad;
	__u32 backend_id;       /* the pick, so a flushed backend (gen bump) is picked again */
	__u32 backend_gen;
	__u32 vip_id;
	__u64 last_seen_ns;     /* kp_now() of the last send (ORIG) or receive (REPLY): a UDP socket's
	                           entry keeps its draining backend in use, as a connection record does */
};
_Static_assert(sizeof(struct kp_sock_nat) == 40, "kp_sock_nat size");

/* Per-VIP counters (per-CPU array indexed by vip id), named after VPP's lb counters. */
struct kp_vip_stats {
	__u64 existing_pkts;  /* "packet from existing sessions" */
	__u64 first_pkts;     /* "first session packet" */
	__u64 untracked_pkts; /* "untracked packet": flow table insert failed */
	__u64 no_server_pkts; /* "no server configured" */
	__u64 bytes;          /* bytes of all packets to the VIP */
	__u64 reply_pkts;     /* replies SNATed back to this VIP */
	__u64 reply_bytes;
};
_Static_assert(sizeof(struct kp_vip_stats) == 56, "kp_vip_stats size");

/* Per-backend counters (per-CPU array indexed by backend id). */
struct kp_backend_stats {
	__u64 packets;
	__u64 bytes;
};
_Static_assert(sizeof(struct kp_backend_stats) == 16, "kp_backend_stats size");

/* Global counters: per-CPU array of __u64 packet counts indexed by these codes. Each packet
 * is counted once under the code that decided its verdict (PASS_*, DROP_*, TX_*); DNAT and
 * SNAT count rewrites in addition. */
enum kp_stat {
	KP_STAT_PASS_NOT_IP = 0,     /* not IPv4/IPv6 (ARP, LLDP...) */
	KP_STAT_PASS_NOT_L4 = 1,     /* IP but not TCP/UDP, nor an ICMP error about a NATed connection */
	KP_STAT_PASS_NO_MATCH = 2,   /* TCP/UDP, not for a VIP, not a reply to a NATed connection */
	KP_STAT_PASS_FRAGMENT = 3,   /* a later IP fragment of a datagram that is not kpbpf's */
	KP_STAT_DROP_MALFORMED = 4,  /* truncated or invalid headers of a packet kpbpf would rewrite */
	KP_STAT_DROP_NO_BACKEND = 5, /* VIP without backends that could not be rejected */
	KP_STAT_TX_REDIRECT = 6,     /* NATed and redirected to a vetted interface */
	KP_STAT_TX_PASS = 7,         /* NATed and passed to the kernel stack */
	KP_STAT_PASS_MALFORMED = 8,  /* bad TCP/UDP header, not for a VIP nor a reply: passed as a router would */
	KP_STAT_DNAT = 9,            /* forward packets DNATed (also counted as TX_*) */
	KP_STAT_SNAT = 10,           /* reply packets SNATed (also counted as TX_*) */
	KP_STAT_DROP_TTL = 11,       /* reserved */
	KP_STAT_REJECT = 12,         /* VIP without backends: ICMP port unreachable sent back (also TX_*) */
	KP_STAT_CT_LOOSE = 13,       /* connection picked up mid-stream (no SYN): also DNAT */
	KP_STAT_CT_REMAP = 14,       /* new connection whose client port was remapped (collision) */
	KP_STAT_DROP_CT_CLASH = 15,  /* refused: its tuple collides with a live NATed connection */
	KP_STAT_CT_STALE = 16,       /* a closed or stale reply entry was removed (the packet passed untouched) */
	KP_STAT_ICMP_XLATE = 17,     /* ICMP error about a NATed connection translated (also TX_*) */
	KP_STAT_ICMP_TOO_BIG = 18,   /* DF packet too big for its route: fragmentation needed sent back (also TX_*) */
	KP_STAT_FRAG_XLATE = 19,     /* a later fragment translated like its first fragment (also TX_*) */
	KP_STAT_DROP_FRAG = 20,      /* a later fragment to a VIP or from a backend whose first fragment is unknown */
	KP_STAT_FIB_LOOKUP = 21,     /* bpf_fib_lookup calls: next-hop cache misses and refreshes */
	KP_STAT_DROP_SRC_RANGE = 22, /* a new connection to a VIP from outside its allowed source ranges */
	KP_STAT_DROP_NO_LOCAL = 23,  /* a new connection to a traffic-policy-local entry without a local endpoint */
	KP_STAT_MASQ = 24,           /* new connections masqueraded (ETP cluster to another node, hairpin) */
	KP_STAT_DROP_MASQ_PORTS = 25, /* a new masqueraded connection found no free port to take */
	KP_STAT_SOCK_XLATE = 26,     /* a socket of the node's own connected to or sent to a backend instead of a VIP */
	KP_STAT_SOCK_NO_BACKEND = 27, /* a socket of the node's own refused: its VIP has no serving endpoint */
	KP_STAT_MASQ_EVICT = 28,      /* a masquerade port taken from a UDP flow that never saw a reply (every candidate was held) */
	KP_STAT_XLATE = 29,          /* packets translated across families, NAT46 or NAT64 (also DNAT or SNAT) */
	KP_STAT_DROP_XLATE = 30,     /* a cross-family connection's packet that cannot be translated (IPv4
	                                options, IPv6 extension headers, a first fragment without a UDP
	                                checksum) or, an IPv6 fragment, is too big once translated */
	KP_STAT_MAX = 31,
};

#endif /* KP_SHARED_H */
