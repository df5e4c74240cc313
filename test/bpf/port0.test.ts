// A UDP datagram or TCP segment from source port 0 to a VIP (RFC 768 allows port 0; netfilter NATs
// it): forwarded to a backend as any other, its reply NATed back, and nothing left behind. It was
// dropped as a clash (drop_ct_clash), leaving a claimed reply entry without its forward record.
import t from 'tap';
import { parseConfig } from '../../src/config/validate.js';
import { testRun } from '../../src/loader/index.js';
import { buildPacket, parsePacket, TCP_SYN } from '../helpers/packet.js';
import { bpfSkipReason, KP_CONF_F_NO_FIB, KP_STAT, testControl, XDP } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const VIP = '198.18.62.1';
const BE = '198.18.62.10';

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('source port 0', { skip: reason }, async () => {});
else run();

function run() {
  const control = testControl(t, 'port0');
  control.apply(parseConfig({ conf: { buckets: 1024 }, vips: [{ prefix: VIP, protocol: 'udp', port: 53, target_port: 5353, backends: [BE] }, { prefix: VIP, port: 80, target_port: 8080, backends: [BE] }] }), { dryRun: false });
  const c = control.dp.maps.config.lookup(0)!;
  control.dp.maps.config.update(0, { ...c, flags: c.flags | KP_CONF_F_NO_FIB });
  const stat = (name: keyof typeof KP_STAT) => control.dp.maps.stats.sum(KP_STAT[name], (a, b) => a + b)!;
  const entries = () => [...control.dp.maps.ct.entries()].length;

  for (const proto of ['udp', 'tcp'] as const) {
    t.test(`${proto.toUpperCase()} from port 0`, async (t) => {
      const dport = proto === 'udp' ? 53 : 80;
      const target = proto === 'udp' ? 5353 : 8080;
      const clash = stat('DROP_CT_CLASH');
      const n = entries();
      const fwd = testRun(control.dp.progFd, buildPacket({ src: '198.18.0.9', dst: VIP, proto, sport: 0, dport, ...(proto === 'tcp' ? { tcpFlags: TCP_SYN, seq: 1 } : {}) }));
      t.equal(fwd.retval, XDP.PASS, 'forwarded (handed to the kernel: no FIB in this test)');
      const f = parsePacket(fwd.data);
      t.match(f, { dst: BE, dport: target }, 'DNATed to the backend');
      t.equal(stat('DROP_CT_CLASH'), clash, 'not a clash');
      t.equal(entries() - n, 2, 'one connection: its forward and reply entries');
      const rep = testRun(control.dp.progFd, buildPacket({ src: BE, dst: '198.18.0.9', proto, sport: target, dport: f.sport, ...(proto === 'tcp' ? { tcpFlags: 0x12, seq: 5 } : {}) }));
      t.match(parsePacket(rep.data), { src: VIP, sport: dport, dst: '198.18.0.9', dport: 0 }, 'the reply comes back from the VIP to port 0');
    });
  }
}
