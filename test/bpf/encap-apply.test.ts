// `apply` across families: a config whose VIP's backends change family (NAT44 -> NAT46 and back) is
// one diff. The VIP stays (same id, its connections go on with their draining backends), its
// entries change family, and a dry run and the running state show the encap.
import t from 'tap';
import { parseConfig } from '../../src/config/validate.js';
import { VipTable } from '../../src/dataplane/vips.js';
import { formatOp } from '../../src/config/diff.js';
import { testRun } from '../../src/loader/index.js';
import { buildPacket, parsePacket, TCP_ACK, TCP_SYN } from '../helpers/packet.js';
import { bpfSkipReason, KP_CONF_F_NO_FIB, testControl } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const VIP = '198.18.49.1';
const V4 = ['198.18.49.10', '198.18.49.11'];
const V6 = ['2001:db8:49::10', '2001:db8:49::11'];

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('apply across families', { skip: reason }, async () => {});
else run();

function run() {
  const control = testControl(t, 'encap');
  const config = (backends: string[]) =>
    parseConfig({ conf: { buckets: 1024, nat46_prefix: '2001:db8:ff49::/96' }, vips: [{ prefix: VIP, port: 80, target_port: 8080, backends }] });
  control.apply(config(V4), { dryRun: false });
  const c = control.dp.maps.config.lookup(0)!;
  control.dp.maps.config.update(0, { ...c, flags: c.flags | KP_CONF_F_NO_FIB });
  const send = (sport: number, flags: number) =>
    parsePacket(testRun(control.dp.progFd, buildPacket({ src: '198.18.0.9', dst: VIP, proto: 'tcp', sport, dport: 80, tcpFlags: flags, seq: 1 })).data).dst;

  t.test('NAT44 -> NAT46 by the backends alone: one diff, the VIP kept, its live connection on its old backend', async (t) => {
    const id = control.listVips()[0].id;
    const before = send(40100, TCP_SYN);
    t.ok(V4.includes(before), `NAT44 first (${before})`);
    const dry = control.apply(config(V6), { dryRun: true });
    t.same(dry.plan.map(formatOp).filter((l) => l.startsWith('vip')), [`vip update ${VIP}/32 tcp port 80 target 8080 new_len auto encap nat46`], 'a dry run says the encap');
    control.apply(config(V6), { dryRun: false });
    const v = control.listVips()[0];
    t.equal(v.id, id, 'the same VIP');
    t.equal(v.encap, 'nat46');
    t.same(v.backends.filter((b) => b.state === 'active').map((b) => b.address).sort(), V6);
    t.equal(send(40100, TCP_ACK), before, 'the live connection stays on its IPv4 backend');
    t.ok(V6.includes(send(40101, TCP_SYN)), 'a new one goes to an IPv6 backend');
    t.equal(control.conf().nat46Prefix, '2001:db8:ff49::/96');
  });

  t.test('and back: NAT44 again, the IPv6 backends drain', async (t) => {
    control.apply(config(V4), { dryRun: false });
    const v = control.listVips()[0];
    t.equal(v.encap, undefined);
    t.ok(V4.includes(send(40102, TCP_SYN)));
    t.same(control.apply(config(V4), { dryRun: true }).plan, [], 'nothing left to change');
  });

  t.test('a failed apply rolls a NAT46 and a NAT64 VIP back with their encap (their backends stay active)', async (t) => {
    const VIP64 = '2001:db8:49::64';
    const both = (extra: object[] = []) =>
      parseConfig({
        conf: { buckets: 1024, nat46_prefix: '2001:db8:ff49::/96' },
        vips: [{ prefix: VIP, port: 80, target_port: 8080, backends: V6 }, { prefix: VIP64, port: 80, target_port: 8080, encap: 'nat64', backends: V4 }, ...extra],
      });
    control.apply(both(), { dryRun: false });
    const shape = () => control.listVips().map((v) => [v.prefix, v.encap, v.backends.filter((b) => b.state === 'active').map((b) => b.address).sort()]);
    const before = shape();
    t.same(before.map((v) => v[1]), ['nat46', 'nat64']);
    // The new VIP's backends fail, as a full map or a kernel error would, after the others were read.
    const real = VipTable.prototype.putBackends;
    VipTable.prototype.putBackends = function (this: VipTable, ...args: Parameters<typeof real>) {
      if (args[1].includes('198.18.49.99')) throw new Error('injected failure');
      return real.apply(this, args);
    };
    try {
      t.throws(() => control.apply(both([{ prefix: '198.18.49.2', port: 80, backends: ['198.18.49.99'] }]), { dryRun: false }), /running state restored: injected failure/);
    } finally {
      VipTable.prototype.putBackends = real;
    }
    t.same(shape(), before, 'the same VIPs, encaps and active backends as before');
    t.same(control.apply(both(), { dryRun: true }).plan, [], 'nothing to change against the config that was running');
  });
}
