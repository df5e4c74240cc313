// LoadBalancer and external IPs in build/kp.bpf.o under BPF_PROG_TEST_RUN: they forward as cluster IPs;
// a LoadBalancer VIP with source ranges (loadBalancerSourceRanges) takes new connections only from
// them and drops and counts the rest, while connections it already took go on (kube-proxy's filter
// sees a connection's first packet only). Configured through the control plane's VipTable.
import t from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import { addU64 } from '../../src/maps/map.js';
import { VipTable } from '../../src/dataplane/vips.js';
import { buildPacket, TCP_ACK, TCP_SYN, verifyChecksums, type PacketSpec } from '../helpers/packet.js';
import { bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, KP_STAT, testConfig, XDP } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const LB_IP = '198.18.200.1';
const EXT_IP = '198.18.200.2';
const BACKEND = '198.18.20.1';
const ALLOWED = '198.18.0.10'; // in 198.18.0.0/28
const DENIED = '198.18.0.20';

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('LoadBalancer fixtures', { skip: reason }, async () => {});
else run();

function run() {
  const dp: Dataplane = loadDataplane({ objectPath: KP_OBJECT, buckets: 1024 });
  t.teardown(() => dp.close());
  dp.maps.config.update(0, testConfig({ hashSeed: 7, flags: KP_CONF_F_NO_FIB }));
  const vips = new VipTable(dp);
  const lbSpec = { prefix: `${LB_IP}/32`, protocol: 'tcp' as const, port: 443, targetPort: 8443, newLen: 7, type: 'loadbalancer' as const };
  const lb = vips.add({ ...lbSpec, sourceRanges: ['198.18.0.0/28', '198.18.9.0/24'] });
  vips.addBackends(lb, [BACKEND], 1);
  const ext = vips.add({ prefix: `${EXT_IP}/32`, protocol: 'tcp', port: 443, targetPort: 8443, newLen: 7, type: 'externalip' });
  vips.addBackends(ext, [BACKEND], 1);
  const stat = (name: keyof typeof KP_STAT) => dp.maps.stats.sum(KP_STAT[name], addU64)!;
  const syn = (src: string, dst: string, sport: number): PacketSpec => ({ src, dst, proto: 'tcp', sport, dport: 443, tcpFlags: TCP_SYN });

  t.test('listing: type and source ranges', async (t) => {
    t.match(vips.list(), [
      { prefix: `${LB_IP}/32`, type: 'loadbalancer', sourceRanges: ['198.18.0.0/28', '198.18.9.0/24'] },
      { prefix: `${EXT_IP}/32`, type: 'externalip' },
    ]);
    t.notOk(vips.list()[1].sourceRanges, 'an external IP has none');
    t.same(new VipTable(dp).list().map((v) => [v.type, v.sourceRanges]), [['loadbalancer', ['198.18.0.0/28', '198.18.9.0/24']], ['externalip', undefined]], 'read back from the maps');
  });

  t.test('a source in a range: DNATed like a cluster IP', async (t) => {
    const p = syn(ALLOWED, LB_IP, 40001);
    const d0 = stat('DNAT');
    const r = testRun(dp.progFd, buildPacket(p));
    t.equal(r.retval, XDP.PASS);
    t.equal(r.data.toString('hex'), buildPacket({ ...p, dst: BACKEND, dport: 8443 }).toString('hex'));
    t.same(verifyChecksums(r.data), { ip: true, l4: true });
    t.equal(stat('DNAT') - d0, 1n);
  });

  t.test('a source outside every range: dropped and counted, nothing else moves', async (t) => {
    const [d0, x0] = [stat('DNAT'), stat('DROP_SRC_RANGE')];
    const r = testRun(dp.progFd, buildPacket(syn(DENIED, LB_IP, 40002)));
    t.equal(r.retval, XDP.DROP);
    t.equal(stat('DROP_SRC_RANGE') - x0, 1n, 'DROP_SRC_RANGE +1');
    t.equal(stat('DNAT') - d0, 0n);
    t.notOk(dp.maps.ct.lookup({ saddr: DENIED, daddr: LB_IP, sport: 40002, dport: 443, proto: 6 }), 'no connection recorded');
  });

  t.test('an external IP has no ranges: every source', async (t) => {
    const r = testRun(dp.progFd, buildPacket(syn(DENIED, EXT_IP, 40003)));
    t.equal(r.retval, XDP.PASS);
    t.equal(r.data.toString('hex'), buildPacket({ ...syn(DENIED, EXT_IP, 40003), dst: BACKEND, dport: 8443 }).toString('hex'));
  });

  t.test('ranges changed: a connection taken before goes on, a new one from the old range is dropped', async (t) => {
    vips.add({ ...lbSpec, sourceRanges: ['198.18.9.0/24'] });
    const mid: PacketSpec = { src: ALLOWED, dst: LB_IP, proto: 'tcp', sport: 40001, dport: 443, tcpFlags: TCP_ACK, payload: Buffer.from('x') };
    const r = testRun(dp.progFd, buildPacket(mid));
    t.equal(r.retval, XDP.PASS, 'the live connection still forwards');
    t.equal(r.data.toString('hex'), buildPacket({ ...mid, dst: BACKEND, dport: 8443 }).toString('hex'));
    const x0 = stat('DROP_SRC_RANGE');
    t.equal(testRun(dp.progFd, buildPacket(syn(ALLOWED, LB_IP, 40004))).retval, XDP.DROP, 'a new connection from the removed range is dropped');
    t.equal(stat('DROP_SRC_RANGE') - x0, 1n);
    t.same([...dp.maps.srcRanges.keys()].map((k) => `${k.addr}/${k.len128 - 96}`), ['198.18.9.0/24'], 'kp_src_ranges holds only the new range');
  });

  t.test('ranges removed: every source; a VIP delete leaves no range behind', async (t) => {
    vips.add({ ...lbSpec });
    t.equal(testRun(dp.progFd, buildPacket(syn(DENIED, LB_IP, 40005))).retval, XDP.PASS);
    vips.del(vips.list()[0]);
    t.same([...dp.maps.srcRanges.keys()], []);
  });

  t.test('source ranges on a cluster IP, or a node port on an external IP, are refused', async (t) => {
    t.throws(() => vips.add({ prefix: '198.18.200.3/32', protocol: 'tcp', port: 80, targetPort: 80, newLen: 7, sourceRanges: ['198.18.0.0/24'] }), /only a loadbalancer VIP has source ranges \(this one is clusterip\)/);
    t.throws(() => vips.add({ prefix: '198.18.200.3/32', protocol: 'tcp', port: 80, targetPort: 80, newLen: 7, type: 'externalip', nodePort: 30001 }), /externalip VIPs have no node port/);
    t.equal(vips.list().length, 1, 'nothing added');
  });
}
