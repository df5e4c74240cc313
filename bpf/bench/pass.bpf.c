// SPDX-License-Identifier: GPL-2.0-only
/* pass.bpf.c: benchmark floor, the cheapest possible XDP program. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int kp_bench_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
