/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_clock.h: the data path's clock, in nanoseconds since boot at tick resolution. */
#ifndef KP_CLOCK_H
#define KP_CLOCK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* libbpf fills it from the kernel's config (/proc/config.gz or /boot/config-*); 0 if neither exists. */
extern const int CONFIG_HZ __kconfig __weak;

/* jiffies starts 300 s before its wrap point, so the 32-bit wrap is met early (include/linux/jiffies.h). */
#define KP_INITIAL_JIFFIES(hz) ((__u64)(__u32)(-300 * (hz)))

/* bpf_jiffies64() is inlined by the verifier on x86-64 and arm64, where bpf_ktime_get_coarse_ns()
 * is a helper call (about 25 ns on this machine with return thunks). Both tick at CONFIG_HZ, so
 * timeouts keep their resolution; jiffies trails CLOCK_MONOTONIC by the time the tick took to
 * start at boot (a fraction of a second), which only the control plane's own comparisons see. */
static __always_inline __u64 kp_now(void)
{
	if (CONFIG_HZ > 0)
		return (bpf_jiffies64() - KP_INITIAL_JIFFIES(CONFIG_HZ)) * (1000000000ULL / CONFIG_HZ);
	return bpf_ktime_get_coarse_ns();
}

#endif /* KP_CLOCK_H */
