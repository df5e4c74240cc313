// Traffic policies in build/kp.bpf.o under BPF_PROG_TEST_RUN: a node port VIP with one local and one
// remote backend. externalTrafficPolicy local: every connection through the node port lands on the
// local backend, the cluster IP still spreads over both; internalTrafficPolicy local narrows the
// cluster IP too; with no local backend a connection to a local entry is dropped and counted (as
// kube-proxy drops it), not rejected. Configured through the control plane's VipTable.
import t from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import { addU64 } from '../../src/maps/map.js';
import { VipTable } from '../../src/dataplane/vips.js';
import { buildPacket, parsePacket, TCP_SYN } from '../helpers/packet.js';
import { bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, KP_STAT, testConfig, XDP } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const NODE = '198.18.0.1';
const VIP = '198.18.100.30';
const LOCAL = '198.18.20.1';
const REMOTE = '198.18.21.1';
const NODE_PORT = 30555;
const FLOWS = 40;

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('traffic policy fixtures', { skip: reason }, async () => {});
else run();

function run() {
  const dp: Dataplane = loadDataplane({ objectPath: KP_OBJECT, buckets: 4096 });
  t.teardown(() => dp.close());
  dp.maps.config.update(0, testConfig({ hashSeed: 11, flags: KP_CONF_F_NO_FIB }));
  const vips = new VipTable(dp, () => [NODE]);
  const spec = { prefix: `${VIP}/32`, protocol: 'tcp' as const, port: 80, targetPort: 8080, newLen: 251, nodePort: NODE_PORT };
  const v = vips.add({ ...spec, externalTrafficPolicy: 'local' });
  vips.addBackends(v, [LOCAL], 1, { local: true });
  vips.addBackends(v, [REMOTE], 1);
  const stat = (name: keyof typeof KP_STAT) => dp.maps.stats.sum(KP_STAT[name], addU64)!;
  let sport = 41000;
  /** Where FLOWS new connections to dst:dport go (backend addresses, with counts); drops as 'drop'. */
  const spread = (dst: string, dport: number): Record<string, number> => {
    const out: Record<string, number> = {};
    for (let i = 0; i < FLOWS; i++) {
      const r = testRun(dp.progFd, buildPacket({ src: `198.18.0.${10 + (i % 100)}`, dst, proto: 'tcp', sport: sport++, dport, tcpFlags: TCP_SYN }));
      const k = r.retval === XDP.DROP ? 'drop' : parsePacket(r.data).dst;
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  };

  t.test('externalTrafficPolicy local: the node port picks the local backend only, the cluster IP both', async (t) => {
    t.match(vips.list()[0], { externalTrafficPolicy: 'local', backends: [{ address: LOCAL, local: true }, { address: REMOTE }] });
    t.match(new VipTable(dp, () => [NODE]).list()[0], { externalTrafficPolicy: 'local', backends: [{ address: LOCAL, local: true }] }, 'read back from the maps');
    t.same(spread(NODE, NODE_PORT), { [LOCAL]: FLOWS }, 'every node port connection on the local backend');
    const c = spread(VIP, 80);
    t.ok(c[LOCAL] > 5 && c[REMOTE] > 5, `cluster IP connections on both: ${JSON.stringify(c)}`);
  });

  t.test('internalTrafficPolicy local: the cluster IP narrows to the local backend too', async (t) => {
    vips.add({ ...spec, externalTrafficPolicy: 'local', internalTrafficPolicy: 'local' });
    t.same(spread(VIP, 80), { [LOCAL]: FLOWS });
    t.match(vips.list()[0], { internalTrafficPolicy: 'local' });
  });

  t.test('back to cluster: both again, and the local-only table is gone', async (t) => {
    vips.add(spec);
    const c = spread(NODE, NODE_PORT);
    t.ok(c[LOCAL] > 5 && c[REMOTE] > 5, `node port connections on both: ${JSON.stringify(c)}`);
    t.equal(dp.getMaglevTable(v.id, true), undefined);
  });

  t.test('no local backend: a connection through a local entry is dropped and counted, the cluster IP still serves', async (t) => {
    vips.add({ ...spec, externalTrafficPolicy: 'local' });
    vips.delBackends(vips.list()[0], [LOCAL], { flush: true });
    const d0 = stat('DROP_NO_LOCAL');
    const r0 = stat('REJECT');
    t.same(spread(NODE, NODE_PORT), { drop: FLOWS }, 'dropped, not rejected');
    t.equal(stat('DROP_NO_LOCAL') - d0, BigInt(FLOWS), 'DROP_NO_LOCAL counts them');
    t.equal(stat('REJECT') - r0, 0n, 'no ICMP reject');
    t.same(spread(VIP, 80), { [REMOTE]: FLOWS }, 'the cluster IP (policy cluster) uses the remote backend');
  });

  t.test('no endpoint at all: a local entry rejects as kube-proxy does (hasAnyEndpoints), and does not drop', async (t) => {
    vips.delBackends(vips.list()[0], [REMOTE], { flush: true });
    const d0 = stat('DROP_NO_LOCAL');
    const r0 = stat('REJECT');
    const r = testRun(dp.progFd, buildPacket({ src: '198.18.0.10', dst: NODE, proto: 'tcp', sport: sport++, dport: NODE_PORT, tcpFlags: TCP_SYN }));
    t.not(r.retval, XDP.DROP, 'not dropped');
    t.equal(stat('REJECT') - r0, 1n, 'rejected (counted)');
    t.equal(stat('DROP_NO_LOCAL') - d0, 0n, 'not a no-local drop');
    vips.addBackends(vips.list()[0], [REMOTE], 1);
  });

  t.test('policies that do not fit the type are refused', async (t) => {
    t.throws(() => vips.add({ prefix: '198.18.100.31/32', protocol: 'tcp', port: 80, targetPort: 80, newLen: 7, externalTrafficPolicy: 'local' }), /a clusterip VIP has no external traffic/);
    t.throws(() => vips.add({ prefix: '198.18.100.31/32', protocol: 'tcp', port: 80, targetPort: 80, newLen: 7, type: 'loadbalancer', internalTrafficPolicy: 'local' }), /applies to cluster IPs, and this VIP is a loadbalancer/);
  });
}
