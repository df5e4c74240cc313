// Session affinity ClientIP in build/kp.bpf.o under BPF_PROG_TEST_RUN: every new connection from one
// client address goes to the backend of its last one while the timeout has not passed; other clients
// still spread; a flushed backend, or a timeout that passed, picks again. Through the VipTable.
import t from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import { VipTable } from '../../src/dataplane/vips.js';
import { buildPacket, parsePacket, TCP_SYN } from '../helpers/packet.js';
import { bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, testConfig } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const VIP = '198.18.100.80';
const BACKENDS = ['198.18.20.1', '198.18.21.1', '198.18.22.1', '198.18.23.1'];

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('session affinity fixtures', { skip: reason }, async () => {});
else run();

function run() {
  const dp: Dataplane = loadDataplane({ objectPath: KP_OBJECT, buckets: 4096 });
  t.teardown(() => dp.close());
  dp.maps.config.update(0, testConfig({ hashSeed: 17, flags: KP_CONF_F_NO_FIB }));
  const vips = new VipTable(dp, () => []);
  const spec = { prefix: `${VIP}/32`, protocol: 'tcp' as const, port: 80, targetPort: 8080, newLen: 251, sessionAffinityTimeout: 60 };
  const v = vips.add(spec);
  vips.addBackends(v, BACKENDS, 1);
  let sport = 43000;
  const connect = (client: string) => parsePacket(testRun(dp.progFd, buildPacket({ src: client, dst: VIP, proto: 'tcp', sport: sport++, dport: 80, tcpFlags: TCP_SYN })).data).dst;

  t.test('one client: every new connection on one backend; many clients: spread', async (t) => {
    t.match(vips.list()[0], { sessionAffinityTimeout: 60 });
    t.match(new VipTable(dp, () => []).list()[0], { sessionAffinityTimeout: 60 }, 'read back from the maps');
    const mine = new Set(Array.from({ length: 30 }, () => connect('198.18.0.10')));
    t.equal(mine.size, 1, `one backend for 30 connections: ${[...mine]}`);
    const many = new Set(Array.from({ length: 40 }, (_, i) => connect(`198.18.0.${20 + i}`)));
    t.ok(many.size >= 3, `40 clients spread over ${many.size} backends`);
  });

  t.test('a flushed backend: the client picks again, and sticks to the new one', async (t) => {
    const before = connect('198.18.0.11');
    vips.delBackends(vips.list()[0], [before], { flush: true });
    const after = new Set(Array.from({ length: 10 }, () => connect('198.18.0.11')));
    t.equal(after.size, 1);
    t.not([...after][0], before);
    vips.addBackends(vips.list()[0], [before], 1);
  });

  t.test('a timeout that passed picks again (the Maglev pick stands)', async (t) => {
    const key = { vipId: v.id, addr: '198.18.0.12' };
    connect('198.18.0.12');
    const a = dp.maps.affinity.lookup(key)!;
    t.ok(a, 'remembered');
    // Remember another backend, as if the last connection had been two minutes ago (timeout 60 s):
    // each new connection goes where Maglev sends its own tuple, which is that backend 1 time in 4.
    const target = vips.list()[0].backends[0];
    let stuck = 0;
    for (let i = 0; i < 8; i++) {
      dp.maps.affinity.update(key, { backendId: target.id, backendGen: target.gen, lastNs: a.lastNs - 120_000_000_000n });
      const dst = connect('198.18.0.12');
      if (dst === target.address) stuck++;
      const now = dp.maps.affinity.lookup(key)!;
      t.equal(vips.list()[0].backends.find((b) => b.id === now.backendId)?.address, dst, `expired (${i}): the new pick is remembered`);
      t.ok(now.lastNs > a.lastNs - 120_000_000_000n, 'with its time');
    }
    t.ok(stuck < 8, `an expired entry is not followed (${stuck} of 8 on it, by Maglev alone)`);
    dp.maps.affinity.update(key, { ...dp.maps.affinity.lookup(key)!, backendId: target.id, backendGen: target.gen });
    t.equal(connect('198.18.0.12'), target.address, 'within the timeout: the remembered backend');
  });

  t.test('affinity off: connections spread again', async (t) => {
    vips.add({ ...spec, sessionAffinityTimeout: 0 });
    t.notOk(vips.list()[0].sessionAffinityTimeout);
    const spread = new Set(Array.from({ length: 30 }, () => connect('198.18.0.10')));
    t.ok(spread.size >= 3, `one client spread over ${spread.size} backends`);
  });
}
