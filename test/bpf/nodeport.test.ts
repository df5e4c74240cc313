// NodePort in build/kp.bpf.o under BPF_PROG_TEST_RUN: a VIP with a node port, configured through the
// control plane's VipTable with two node addresses, is reached on each (node address, node port) for
// TCP and UDP with the VIP's own backends and counters; replies leave from the node address and node
// port the client used. Output bytes are built from fields with checksums computed from scratch.
import t from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import { addU64 } from '../../src/maps/map.js';
import { VipTable } from '../../src/dataplane/vips.js';
import { buildPacket, TCP_ACK, TCP_SYN, verifyChecksums, type PacketSpec } from '../helpers/packet.js';
import { bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, KP_STAT, testConfig, XDP } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const NODE_ADDRS = ['198.18.0.1', '198.18.5.1'];
const CLUSTER_IP = '198.18.100.21';
const NODE_PORT = 30964;
const BACKEND = '198.18.20.1';
const CLIENT = '198.18.0.10';

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('NodePort fixtures', { skip: reason }, async () => {});
else run();

function run() {
  const dp: Dataplane = loadDataplane({ objectPath: KP_OBJECT, buckets: 1024 });
  t.teardown(() => dp.close());
  dp.maps.config.update(0, testConfig({ hashSeed: 7, flags: KP_CONF_F_NO_FIB }));
  let nodeAddrs = NODE_ADDRS;
  const vips = new VipTable(dp, () => nodeAddrs);
  for (const protocol of ['tcp', 'udp'] as const) {
    const v = vips.add({ prefix: `${CLUSTER_IP}/32`, protocol, port: 3306, targetPort: 3307, newLen: 7, nodePort: NODE_PORT });
    vips.addBackends(v, [BACKEND], 1, { local: true }); // on this node: not masqueraded (test/bpf/masq.test.ts)
  }
  const stat = (name: keyof typeof KP_STAT) => dp.maps.stats.sum(KP_STAT[name], addU64)!;

  for (const proto of ['tcp', 'udp'] as const) {
    for (const node of NODE_ADDRS) {
      t.test(`${proto.toUpperCase()} to ${node}:${NODE_PORT}: DNAT to the backend, the reply leaves from ${node}:${NODE_PORT}`, async (t) => {
        const sport = 40000 + NODE_ADDRS.indexOf(node) + (proto === 'udp' ? 10 : 0);
        const fwd: PacketSpec = { src: CLIENT, dst: node, proto, sport, dport: NODE_PORT, tcpFlags: TCP_SYN, payload: Buffer.from('q') };
        const d0 = stat('DNAT');
        const r = testRun(dp.progFd, buildPacket(fwd));
        t.equal(r.retval, XDP.PASS);
        t.equal(r.data.toString('hex'), buildPacket({ ...fwd, dst: BACKEND, dport: 3307 }).toString('hex'), 'exact bytes: destination the backend and target port');
        t.same(verifyChecksums(r.data), { ip: true, l4: true });
        t.equal(stat('DNAT') - d0, 1n);
        const reply: PacketSpec = { src: BACKEND, dst: CLIENT, proto, sport: 3307, dport: sport, tcpFlags: TCP_SYN | TCP_ACK, payload: Buffer.from('a') };
        const s0 = stat('SNAT');
        const rr = testRun(dp.progFd, buildPacket(reply));
        t.equal(rr.retval, XDP.PASS);
        t.equal(rr.data.toString('hex'), buildPacket({ ...reply, src: node, sport: NODE_PORT }).toString('hex'), 'exact bytes: source the node address and node port');
        t.same(verifyChecksums(rr.data), { ip: true, l4: true });
        t.equal(stat('SNAT') - s0, 1n);
      });
    }
  }

  t.test('the cluster IP and the node port share one VIP: its counters and its backend', async (t) => {
    const view = vips.list().find((v) => v.protocol === 'tcp')!;
    t.match(view, { nodePort: NODE_PORT, nodeAddresses: NODE_ADDRS });
    const c = dp.maps.vipStats.sum(view.id, (a, b) => ({ ...a, firstPkts: a.firstPkts + b.firstPkts }))!;
    t.equal(c.firstPkts, BigInt(NODE_ADDRS.length), 'one first packet per node address, counted on the VIP');
  });

  t.test('a node address that went away loses its entry at the next change; the VIP survives a reload of the table state', async (t) => {
    nodeAddrs = [NODE_ADDRS[0]];
    const v = vips.list().find((x) => x.protocol === 'udp')!;
    vips.add({ prefix: v.prefix, protocol: 'udp', port: 3306, targetPort: 3307, newLen: 7, nodePort: NODE_PORT });
    const fwd: PacketSpec = { src: CLIENT, dst: NODE_ADDRS[1], proto: 'udp', sport: 40100, dport: NODE_PORT, payload: Buffer.from('q') };
    const r = testRun(dp.progFd, buildPacket(fwd));
    t.equal(r.retval, XDP.PASS);
    t.equal(r.data.toString('hex'), buildPacket(fwd).toString('hex'), 'untouched: no longer a node address');
    const again = new VipTable(dp, () => nodeAddrs).list().find((x) => x.protocol === 'udp')!;
    t.match(again, { nodePort: NODE_PORT, nodeAddresses: [NODE_ADDRS[0]], port: 3306 }, 'read back from the maps: one VIP with its node port entries');
  });

  t.test('a node port held by another VIP of the protocol is refused and changes nothing', async (t) => {
    const before = [...dp.maps.vips.entries()].length;
    t.throws(() => vips.add({ prefix: '198.18.100.22/32', protocol: 'tcp', port: 80, targetPort: 80, newLen: 7, nodePort: NODE_PORT }), /node port 30964\/tcp is already vip 198\.18\.100\.21\/32 tcp port 3306's/);
    t.equal([...dp.maps.vips.entries()].length, before, 'no entry written');
  });
}
