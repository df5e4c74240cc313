// End to end: pods on this node as clients. Traffic from a pod enters XDP on the host side of its
// veth; it reaches a cluster IP and a node port, and the replies go back into the pod from the
// address it dialled. A pod whose connection to its own service lands on itself (hairpin) is
// masqueraded to the masquerade address, as kube-proxy's hairpin rule does, or its own kernel would
// drop a packet from itself. Every node interface is a vetted redirect target here: the testbed's
// pods have GRO on (a pod's veth in a real cluster is only one if the operator says so).
import t from 'tap';
import type { Backend } from '../../src/testbed/topology.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { CLIENT, e2eHarness, e2eSkipReason } from '../helpers/e2e.js';

const VIP = '198.18.100.51';
const SELF_VIP = '198.18.100.52';
const NODE_PORT = 30552;

const skip = skipUnlessCi(e2eSkipReason());
if (skip) {
  t.test('end-to-end: pods on this node as clients', { skip }, async () => {});
} else {
  run();
}

function run() {
  const { topo, kp, kpJson } = e2eHarness(t, 'pod', 3);
  const [pod, b2, b3] = topo.backends as Backend[];
  /** The test client inside a pod's namespace. */
  function fromPod(mode: string, host: string, port: number, count: number) {
    const out = topo.exec(pod.ns, [process.execPath, CLIENT, mode, '--vip', host, '--port', String(port), '--count', String(count), '--timeout', '2000']);
    return JSON.parse(out.trim().split('\n').pop()!);
  }

  t.before(async () => {
    for (const b of topo.backends) await topo.startServers(b);
    kp('attach', ...topo.nodeIfs(), '--redirect');
    for (const proto of ['tcp', 'udp'] as const) {
      const port = proto === 'tcp' ? '80' : '53';
      const target = proto === 'tcp' ? '8080' : '5353';
      kp('vip', 'add', `${VIP}/32`, 'protocol', proto, 'port', port, 'target', target, 'nodeport', String(NODE_PORT));
      kp('backend', 'add', `${VIP}/32`, 'protocol', proto, 'port', port, 'local', b2.addr, b3.addr);
      kp('vip', 'add', `${SELF_VIP}/32`, 'protocol', proto, 'port', port, 'target', target);
      kp('backend', 'add', `${SELF_VIP}/32`, 'protocol', proto, 'port', port, 'local', pod.addr);
    }
  });

  for (const [mode, proto, port] of [['http', 'tcp', 80], ['udp', 'udp', 53]] as const) {
    t.test(`${proto.toUpperCase()} from a pod to a cluster IP: both other pods serve it, replies come from the VIP`, async (t) => {
      const r = fromPod(mode, VIP, port, 30);
      t.equal(r.ok, 30, `all answered (errors: ${(r.errors ?? []).join('; ')})`);
      t.same(r.remotes, [`${VIP}:${port}`], 'every reply from VIP:port');
      t.ok(r.backends[b2.name] > 3 && r.backends[b3.name] > 3, `spread: ${JSON.stringify(r.backends)}`);
      t.same(r.seenBy, { [b2.name]: [pod.addr], [b3.name]: [pod.addr] }, 'the backends see the pod address');
    });

    t.test(`${proto.toUpperCase()} from a pod to the node port on the node address`, async (t) => {
      const r = fromPod(mode, topo.node.addr, NODE_PORT, 20);
      t.equal(r.ok, 20, `all answered (errors: ${(r.errors ?? []).join('; ')})`);
      t.same(r.remotes, [`${topo.node.addr}:${NODE_PORT}`]);
    });

    t.test(`${proto.toUpperCase()} hairpin: a pod reaching itself through its own service`, async (t) => {
      const masq = kpJson('show', 'conf').masqueradeAddress;
      t.not(masq, 'none', 'a masquerade address is set by default (the first node address)');
      const before = kpJson('show', 'stats').global.masq;
      const r = fromPod(mode, SELF_VIP, port, 10);
      t.equal(r.ok, 10, `all answered (errors: ${(r.errors ?? []).join('; ')})`);
      t.same(r.remotes, [`${SELF_VIP}:${port}`], 'replies from the service address');
      t.same(r.seenBy, { [pod.name]: [masq] }, 'the pod saw itself as the masquerade address');
      // A UDP socket the kernel gives a port it gave before is the same flow (and masqueraded once).
      const flows = mode === 'udp' ? r.flows : 10;
      const masqed = kpJson('show', 'stats').global.masq - before;
      t.ok(masqed >= flows, `each connection masqueraded (${masqed} for ${flows} flows)`);
    });
  }

  t.test('--redirect is refused on an attachment that got generic XDP (lo has no native XDP)', async (t) => {
    let err = '';
    try {
      kp('attach', 'lo', '--redirect');
    } catch (e) {
      err = String((e as { stderr?: string }).stderr);
    }
    t.match(err, /attach lo: it got generic \(skb\) XDP, and --redirect is refused there/);
    t.notOk((kpJson('show', 'interfaces') as { ifname: string }[]).some((i) => i.ifname === 'lo'), 'nothing left attached to lo');
  });
}
