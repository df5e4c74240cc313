// SPDX-License-Identifier: GPL-2.0-only
/* parse.bpf.c: benchmark baseline, kp.bpf.c's parser alone, then XDP_PASS. */
#include "../kp_parse.h"

SEC("xdp")
int kp_bench_parse(struct xdp_md *ctx)
{
	struct kp_pkt pkt;
	__u32 dport = 0;
	int rc;

	rc = kp_parse(ctx, &pkt);
	if (rc == KP_PARSE_OK)
		dport = pkt.ports[1];
	/* An empty asm consuming the results keeps the parse from being optimised away. */
	asm volatile("" : : "r"(rc), "r"(dport));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
