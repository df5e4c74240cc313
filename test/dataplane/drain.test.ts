// Which draining backends a live connection still uses (src/dataplane/connections.ts): the drain's
// walk of kp_ct decodes only the draining backends' entries (forward records by backend id, reply
// entries by source address) and finds what the full walk finds: a connection is live by either
// direction's last packet, a masqueraded one's reply entry found through the client it keeps.
import t from 'tap';
import { backendsInUse } from '../../src/dataplane/connections.js';
import { DEFAULT_TIMEOUTS } from '../../src/config/timeouts.js';
import { CT_FLAG, type Ct, type FlowKey } from '../../src/maps/codecs.js';
import { bpfSkipReason, testControl } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const VIP = '198.18.110.1';
const UDP = 17;
const STATE_UDP = 9;

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('the drain walk', { skip: reason }, async () => {});
else {
  t.test("the drain walk reads only the draining backends' connections and finds what the full walk finds", async (t) => {
    const control = testControl(t, 'drain');
    const v = control.vips.add({ prefix: `${VIP}/32`, protocol: 'udp', port: 53, targetPort: 5353, newLen: 7 });
    control.vips.addBackends(v, ['198.18.111.1', '198.18.111.2', '198.18.111.3'], 1);
    const [a, b, c] = control.listVips()[0].backends;
    const now = process.hrtime.bigint();
    const recent = now - 1_000_000_000n;
    const old = now - 120_000_000_000n; // past the UDP timeout (30 s)
    const put = (k: FlowKey, v: Partial<Ct>) =>
      control.dp.maps.ct.update(k, { vipAddr: '::', lastSeenNs: recent, backendId: 0, backendGen: 0, vipId: 1, vipPort: 0, clientPort: 0, state: STATE_UDP, flags: 0, ...v });
    const conn = (client: string, port: number, be: typeof a, gen: number, fwdSeen: bigint, replySeen?: bigint, masq?: { addr: string; port: number }) => {
      put({ saddr: client, daddr: VIP, sport: port, dport: 53, proto: UDP }, { backendId: be.id, backendGen: gen, lastSeenNs: fwdSeen, clientPort: masq?.port ?? port, ...(masq ? { vipAddr: masq.addr } : {}) });
      if (replySeen !== undefined) {
        put(
          { saddr: be.address, daddr: masq?.addr ?? client, sport: 5353, dport: masq?.port ?? port, proto: UDP, dir: 1 },
          { lastSeenNs: replySeen, vipAddr: VIP, vipPort: 53, clientPort: port, flags: CT_FLAG.reply | (masq ? CT_FLAG.masq : 0), ...(masq ? { clientAddr: client } : {}) },
        );
      }
    };
    conn('198.18.0.1', 40001, a, a.gen, old, recent); // live by its reply alone
    conn('198.18.0.2', 40002, a, a.gen - 1 || 99, recent); // an older generation of A's slot
    conn('198.18.0.3', 40003, b, b.gen, recent, recent); // B: not draining
    conn('198.18.0.4', 40004, c, c.gen, old, recent, { addr: '198.18.120.1', port: 61000 }); // masqueraded, live by its reply
    conn('198.18.0.5', 40005, c, c.gen, old, old); // C: a dead one beside it

    const all = backendsInUse(control.dp, DEFAULT_TIMEOUTS);
    const only = backendsInUse(control.dp, DEFAULT_TIMEOUTS, new Map([[a.id, a.address], [c.id, c.address]]));
    const sorted = (m: Map<number, Set<number>>, ids: number[]) => ids.map((id) => [id, [...(m.get(id) ?? [])].sort((x, y) => x - y)]);
    t.same(sorted(only, [a.id, c.id]), [[a.id, [a.gen - 1 || 99, a.gen].sort((x, y) => x - y)], [c.id, [c.gen]]], "A's two generations and C's live masqueraded connection");
    t.same(sorted(only, [a.id, c.id]), sorted(all, [a.id, c.id]), 'as the full walk finds');
    t.notOk(only.has(b.id), "B's connections were not read");
    t.ok(all.has(b.id), '(the full walk has them)');
  });
}
