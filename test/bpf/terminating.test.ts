// Terminating endpoints (KEP-1669) in build/kp.bpf.o under BPF_PROG_TEST_RUN: a serving-but-
// terminating backend takes no new connection while a ready one exists, keeps its connections, and
// takes new ones when no ready backend is left. Configured through the control plane's VipTable.
import t from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import { VipTable } from '../../src/dataplane/vips.js';
import { buildPacket, parsePacket, TCP_ACK, TCP_SYN } from '../helpers/packet.js';
import { bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, testConfig } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const VIP = '198.18.100.70';
const READY = '198.18.20.1';
const TERMINATING = '198.18.21.1';

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('terminating endpoint fixtures', { skip: reason }, async () => {});
else run();

function run() {
  const dp: Dataplane = loadDataplane({ objectPath: KP_OBJECT, buckets: 4096 });
  t.teardown(() => dp.close());
  dp.maps.config.update(0, testConfig({ hashSeed: 13, flags: KP_CONF_F_NO_FIB }));
  const vips = new VipTable(dp, () => []);
  const v = vips.add({ prefix: `${VIP}/32`, protocol: 'tcp', port: 80, targetPort: 8080, newLen: 251 });
  vips.addBackends(v, [READY, TERMINATING], 1);
  let sport = 42000;
  const syn = (port = sport++) => parsePacket(testRun(dp.progFd, buildPacket({ src: '198.18.0.10', dst: VIP, proto: 'tcp', sport: port, dport: 80, tcpFlags: TCP_SYN })).data).dst;
  const spread = () => {
    const out: Record<string, number> = {};
    for (let i = 0; i < 40; i++) {
      const d = syn();
      out[d] = (out[d] ?? 0) + 1;
    }
    return out;
  };

  t.test('while a ready backend exists, a terminating one gets no new connection but keeps its own', async (t) => {
    // A connection that lands on the backend before it starts terminating.
    let mine = 0;
    for (let i = 0; i < 200 && syn((mine = sport++)) !== TERMINATING; i++);
    vips.addBackends(vips.list()[0], [TERMINATING], 1, { terminating: true });
    t.match(vips.list()[0].backends, [{ address: READY }, { address: TERMINATING, terminating: true }], 'listed as terminating');
    t.same(Object.keys(spread()), [READY], 'new connections: the ready backend only');
    const more = parsePacket(testRun(dp.progFd, buildPacket({ src: '198.18.0.10', dst: VIP, proto: 'tcp', sport: mine, dport: 80, tcpFlags: TCP_ACK })).data);
    t.equal(more.dst, TERMINATING, 'its existing connection stays on it');
  });

  t.test('with no ready backend left, the terminating one takes new connections', async (t) => {
    vips.delBackends(vips.list()[0], [READY], { flush: true });
    t.same(Object.keys(spread()), [TERMINATING]);
    vips.addBackends(vips.list()[0], [READY], 1);
    t.same(Object.keys(spread()), [READY], 'a ready one again: back to it');
  });
}
