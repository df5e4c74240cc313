// SPDX-License-Identifier: GPL-2.0-only
/* udpgen: AF_PACKET UDP/IPv4 load generator for the benchmark (trafgen aborts on EAGAIN when the
 * receiving veth pushes back, which XDP on a threaded-NAPI veth does). Backpressure here means wait.
 * usage: udpgen IFNAME DSTMAC SRCMAC DADDR DPORT new|est FLOWS MAXPKTS SECONDS
 *   new: source 198.18.64.0/18 random address and random port per packet
 *   est: FLOWS source ports 10000.. from 198.18.64.1, cycled
 * Prints the number of packets sent. Stops on SIGINT/SIGTERM, MAXPKTS or SECONDS. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define FRAME_LEN 60
#define BATCH 64
#define SRC_NET 0xc6124000u /* 198.18.64.0 */
#define SRC_MASK 0x3fffu    /* /18 */

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t csum_add(const uint8_t *p, int len, uint32_t sum)
{
	for (int i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	return sum;
}

static int parse_mac(const char *s, uint8_t *mac)
{
	return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) == 6 ? 0 : -1;
}

static void fill(uint8_t *f, uint32_t saddr, uint16_t sport)
{
	uint8_t *ip = f + 14, *udp = ip + 20;
	uint32_t sum;
	uint16_t c;

	saddr = htonl(saddr);
	memcpy(ip + 12, &saddr, 4);
	ip[10] = ip[11] = 0;
	c = htons(csum_fold(csum_add(ip, 20, 0)));
	memcpy(ip + 10, &c, 2);
	sport = htons(sport);
	memcpy(udp, &sport, 2);
	udp[6] = udp[7] = 0;
	sum = csum_add(ip + 12, 8, 0) + IPPROTO_UDP + (FRAME_LEN - 34);
	c = csum_fold(csum_add(udp, FRAME_LEN - 34, sum));
	c = htons(c ? c : 0xffff);
	memcpy(udp + 6, &c, 2);
}

int main(int argc, char **argv)
{
	uint8_t frames[BATCH][FRAME_LEN] = {};
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
	struct sockaddr_ll sll = {};
	uint8_t dmac[6], smac[6];
	uint32_t daddr, flows;
	uint64_t maxpkts, sent = 0, flow = 0;
	double seconds;
	int fd, one = 1, est;
	struct timespec t0, now;

	if (argc != 10 || parse_mac(argv[2], dmac) || parse_mac(argv[3], smac) || inet_pton(AF_INET, argv[4], &daddr) != 1) {
		fprintf(stderr, "usage: udpgen IFNAME DSTMAC SRCMAC DADDR DPORT new|est FLOWS MAXPKTS SECONDS\n");
		return 2;
	}
	est = strcmp(argv[6], "est") == 0;
	flows = (uint32_t)strtoul(argv[7], NULL, 10);
	maxpkts = strtoull(argv[8], NULL, 10);
	seconds = strtod(argv[9], NULL);
	if (!flows)
		flows = 1;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0 || setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one))) {
		perror("udpgen: socket");
		return 1;
	}
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = (int)if_nametoindex(argv[1]);
	sll.sll_halen = 6;
	memcpy(sll.sll_addr, dmac, 6);
	if (!sll.sll_ifindex || bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		perror("udpgen: bind");
		return 1;
	}
	for (int i = 0; i < BATCH; i++) {
		uint8_t *f = frames[i], *ip = f + 14, *udp = ip + 20;
		uint16_t v;

		memcpy(f, dmac, 6);
		memcpy(f + 6, smac, 6);
		f[12] = 0x08;
		ip[0] = 0x45;
		v = htons(FRAME_LEN - 14);
		memcpy(ip + 2, &v, 2);
		ip[6] = 0x40; /* DF */
		ip[8] = 64;
		ip[9] = IPPROTO_UDP;
		memcpy(ip + 16, &daddr, 4);
		v = htons((uint16_t)atoi(argv[5]));
		memcpy(udp + 2, &v, 2);
		v = htons(FRAME_LEN - 34);
		memcpy(udp + 4, &v, 2);
		iov[i].iov_base = f;
		iov[i].iov_len = FRAME_LEN;
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!stop && sent < maxpkts) {
		int n = BATCH, r;

		if (maxpkts - sent < BATCH)
			n = (int)(maxpkts - sent);
		for (int i = 0; i < n; i++) {
			if (est) {
				fill(frames[i], SRC_NET | 1, (uint16_t)(10000 + flow));
				flow = (flow + 1) % flows;
			} else {
				uint32_t r32 = next_rand();

				fill(frames[i], SRC_NET | (r32 & SRC_MASK), (uint16_t)(1024 + next_rand() % 64512));
			}
		}
		r = sendmmsg(fd, msgs, (unsigned int)n, 0);
		if (r < 0) {
			if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) {
				struct pollfd p = { .fd = fd, .events = POLLOUT };

				poll(&p, 1, 1); /* the receiver pushes back: wait for room */
				continue;
			}
			perror("udpgen: sendmmsg");
			return 1;
		}
		sent += (uint64_t)r;
		if ((sent & 0x3fff) < BATCH) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if ((double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9 > seconds)
				break;
		}
	}
	printf("%llu\n", (unsigned long long)sent);
	return 0;
}
