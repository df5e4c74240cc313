// IPv6 packets to or from an IPv4-mapped address (::ffff:0:0/96) are not kpbpf's: the IPv6 program
// keys addresses on their 16 bytes, where an IPv4 VIP is ::ffff:<VIP>, so such a packet was taken for
// that IPv4 VIP (answered "port unreachable" from ::ffff:<VIP>, counted on the VIP). Found by the data
// path's fuzzer. Each is now passed untouched, as a router would, counted as no match: whole
// packets, later fragments and malformed L4 alike.
import t from 'tap';
import { parseConfig } from '../../src/config/validate.js';
import { testRun } from '../../src/loader/index.js';
import { buildPacket, TCP_SYN } from '../helpers/packet.js';
import { bpfSkipReason, KP_STAT, testControl, XDP } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const VIP = '198.18.61.1';
const MAPPED = `::ffff:${VIP}`;

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('IPv4-mapped IPv6 addresses', { skip: reason }, async () => {});
else run();

function run() {
  const control = testControl(t, 'mapped');
  control.apply(parseConfig({ conf: { buckets: 1024 }, vips: [{ prefix: VIP, port: 80, backends: ['198.18.61.10'] }, { prefix: VIP, protocol: 'udp', port: 53 }] }), { dryRun: false });
  const stat = (name: keyof typeof KP_STAT) => control.dp.maps.stats.sum(KP_STAT[name], (a, b) => a + b)!;
  const vipCounters = () => control.stats().vips.map((v) => v.counters);

  const cases: [string, Parameters<typeof buildPacket>[0]][] = [
    ['a TCP SYN to ::ffff:<IPv4 VIP>', { src: '2001:db8::9', dst: MAPPED, proto: 'tcp', sport: 40000, dport: 80, tcpFlags: TCP_SYN, seq: 1 }],
    ['a UDP datagram to ::ffff:<IPv4 VIP> without backends (was answered port unreachable)', { src: '2001:db8::9', dst: MAPPED, proto: 'udp', sport: 40000, dport: 53 }],
    ['a packet from ::ffff:<backend> as if a reply', { src: '::ffff:198.18.61.10', dst: '2001:db8::9', proto: 'tcp', sport: 80, dport: 40000, tcpFlags: 0x12, seq: 1 }],
    ['a later fragment to ::ffff:<IPv4 VIP>', { src: '2001:db8::9', dst: MAPPED, proto: 'udp', sport: 40000, dport: 53, ext6: [44], fragOffset: 10, id: 7 }],
  ];
  for (const [name, spec] of cases) {
    t.test(name, async (t) => {
      const before = { noMatch: stat('PASS_NO_MATCH'), reject: stat('REJECT'), dnat: stat('DNAT'), counters: vipCounters() };
      const pkt = buildPacket(spec);
      const r = testRun(control.dp.progFd, pkt);
      t.equal(r.retval, XDP.PASS, 'passed');
      t.same(r.data, pkt, 'not one byte changed');
      t.equal(stat('PASS_NO_MATCH') - before.noMatch, 1n, 'counted once as no match');
      t.equal(stat('REJECT'), before.reject, 'no port unreachable');
      t.equal(stat('DNAT'), before.dnat, 'no DNAT');
      t.same(vipCounters(), before.counters, "the IPv4 VIP's counters untouched");
    });
  }

  t.test('the IPv4 VIP itself is served as before', async (t) => {
    const r = testRun(control.dp.progFd, buildPacket({ src: '198.18.0.9', dst: VIP, proto: 'tcp', sport: 40001, dport: 80, tcpFlags: TCP_SYN, seq: 1 }));
    t.not(r.retval, XDP.DROP);
    t.equal(stat('DNAT') > 0n, true);
  });
}
