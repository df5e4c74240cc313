// End to end in generic (skb) XDP mode, which `--mode auto` falls back to where a driver has no XDP:
// bulk TCP both ways through a VIP (300 KB up, then 300 KB down, three times), MTU 1500 everywhere.
// In generic mode a veth peer's TSO hands XDP frames of up to 64 KB (GSO): each of their segments
// fits the MTU, and the kernel segments them on the way out, so the data path checks them per
// segment as the kernel does, and never answers them "fragmentation needed". Plain cluster IP and
// node port traffic too. Addresses: 198.18.0.0/15 only.
import t from 'tap';
import type { Backend } from '../../src/testbed/topology.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { CLIENT, e2eHarness, e2eSkipReason } from '../helpers/e2e.js';

const VIP = '198.18.100.41';
const NODE_PORT = 30941;

const skip = skipUnlessCi(e2eSkipReason());
if (skip) {
  t.test('end-to-end in generic XDP mode', { skip }, async () => {});
} else {
  run();
}

function run() {
  const { topo, kp, kpJson } = e2eHarness(t, 'gx', 2, { gro: false });
  function client(mode: string, host: string, port: number, count: number, extra: string[] = [], ns = topo.client.ns) {
    const out = topo.exec(ns, [process.execPath, CLIENT, mode, '--vip', host, '--port', String(port), '--count', String(count), '--timeout', '5000', ...extra]);
    return JSON.parse(out.trim().split('\n').pop()!);
  }

  t.before(async () => {
    for (const b of topo.backends as Backend[]) await topo.startServers(b, { tcp: 8080, udp: 5353 });
    const out = kp('attach', ...topo.nodeIfs(), '--mode', 'generic');
    for (const i of topo.nodeIfs()) if (!out.includes(`attached ${i} (generic`)) throw new Error(`not generic: ${out}`);
    kp('vip', 'add', `${VIP}/32`, 'port', '80', 'target', '8080', 'nodeport', String(NODE_PORT));
    kp('backend', 'add', `${VIP}/32`, 'port', '80', ...topo.backends.map((b) => b.addr));
  });

  t.test("the peers' TSO is on: XDP sees GSO frames", async (t) => {
    const f = topo.exec(topo.client.ns, ['ethtool', '-k', 'eth0']);
    t.match(f, /tcp-segmentation-offload: on/);
  });

  t.test('bulk TCP both ways through the cluster IP', async (t) => {
    const before = kpJson('show', 'stats').global;
    const r = client('bulk', VIP, 80, 3, ['--bytes', '300000']);
    t.equal(r.ok, 6, `3 uploads and 3 downloads of 300 KB (errors: ${(r.errors ?? []).join('; ')})`);
    const after = kpJson('show', 'stats').global;
    t.equal(after.icmp_too_big - before.icmp_too_big, 0, 'no "fragmentation needed" sent for an aggregate');
  });

  t.test('bulk TCP both ways through the node port (masqueraded)', async (t) => {
    const before = kpJson('show', 'stats').global;
    const r = client('bulk', topo.node.addr, NODE_PORT, 3, ['--bytes', '300000']);
    t.equal(r.ok, 6, `3 uploads and 3 downloads of 300 KB (errors: ${(r.errors ?? []).join('; ')})`);
    t.equal(kpJson('show', 'stats').global.icmp_too_big - before.icmp_too_big, 0, 'no "fragmentation needed" sent for an aggregate');
  });

  t.test('short connections and UDP as in native mode', async (t) => {
    const h = client('http', VIP, 80, 20);
    t.equal(h.ok, 20, `all answered (errors: ${(h.errors ?? []).join('; ')})`);
  });
}
