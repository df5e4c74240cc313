import t from 'tap';
import { diffConfig, formatOp, type RunningState, type Plan, type PlanOp } from '../../src/config/diff.js';
import { parseConfig } from '../../src/config/validate.js';
import type { KpConfig } from '../../src/config/types.js';
import { DEFAULT_TIMEOUTS } from '../../src/config/timeouts.js';

const T = DEFAULT_TIMEOUTS;

const vip80 = { prefix: '198.18.100.1/32', protocol: 'tcp' as const, port: 80 };
const vip53 = { prefix: '2001:db8:100::/64', protocol: 'udp' as const, port: 53 };

const full = (): KpConfig =>
  parseConfig({
    conf: { buckets: 131072 },
    interfaces: [{ name: 'eth0', mode: 'native', redirect: true }, { name: 'eth1' }],
    vips: [
      { prefix: '198.18.100.1/32', port: 80, target_port: 8080, backends: ['198.18.1.2', { address: '198.18.1.3', weight: 2 }] },
      { prefix: '2001:db8:100::/64', protocol: 'udp', port: 53, new_len: 251, backends: ['2001:db8:1::2'] },
    ],
  });

const empty = (): RunningState => ({ conf: { buckets: 131072, timeouts: { ...DEFAULT_TIMEOUTS }, nodeport_range: [30000, 32767] as [number, number], nodeport_addresses: [] as string[], masquerade_ports: [1024, 29999] as [number, number] }, interfaces: [], vips: [] });

/** The running state that `full()` leaves behind. */
const fullRunning = (): RunningState => ({
  conf: { buckets: 131072, timeouts: { ...DEFAULT_TIMEOUTS }, nodeport_range: [30000, 32767] as [number, number], nodeport_addresses: [] as string[], masquerade_ports: [1024, 29999] as [number, number] },
  interfaces: [
    { name: 'eth0', mode: 'native', redirect: true },
    { name: 'eth1', mode: 'generic', redirect: false },
  ],
  vips: [
    {
      ...vip80,
      target_port: 8080,
      node_port: 0,
      type: 'clusterip',
      source_ranges: [],
      backends: [
        { address: '198.18.1.2', weight: 1, state: 'active' },
        { address: '198.18.1.3', weight: 2, state: 'active' },
      ],
    },
    { ...vip53, target_port: 53, new_len: 251, node_port: 0, type: 'clusterip', source_ranges: [], backends: [{ address: '2001:db8:1::2', weight: 1, state: 'active' }] },
  ],
});

/** Applies a plan to a running state the way the data plane would (test model). */
function apply(state: RunningState, plan: Plan): RunningState {
  const s: RunningState = JSON.parse(JSON.stringify(state));
  const find = (v: { prefix: string; protocol: string; port: number }) => {
    const found = s.vips.find((x) => x.prefix === v.prefix && x.protocol === v.protocol && x.port === v.port);
    if (!found) throw new Error(`no VIP ${JSON.stringify(v)}`);
    return found;
  };
  for (const op of plan) {
    switch (op.op) {
      case 'detach':
        s.interfaces = s.interfaces.filter((i) => i.name !== op.name);
        break;
      case 'attach':
        s.interfaces.push({ name: op.name, mode: op.mode === 'auto' ? 'native' : op.mode, redirect: op.redirect });
        break;
      case 'setRedirect':
        s.interfaces.find((i) => i.name === op.name)!.redirect = op.redirect;
        break;
      case 'setConf':
        s.conf = { buckets: op.buckets, timeouts: { ...op.timeouts }, nodeport_range: op.nodeport_range, nodeport_addresses: op.nodeport_addresses, masquerade_ports: op.masquerade_ports, ...(op.masquerade_address !== undefined ? { masquerade_address: op.masquerade_address } : {}), ...(op.masquerade_address6 !== undefined ? { masquerade_address6: op.masquerade_address6 } : {}), ...(op.hash_seed !== undefined ? { hash_seed: op.hash_seed } : {}) };
        break;
      case 'addVip':
        s.vips.push({ ...op.vip, target_port: op.target_port, new_len: op.new_len, node_port: op.node_port, type: op.type, source_ranges: op.source_ranges, backends: [] });
        break;
      case 'updateVip':
        Object.assign(find(op.vip), { target_port: op.target_port, new_len: op.new_len, node_port: op.node_port, type: op.type, source_ranges: op.source_ranges });
        for (const k of ['external_traffic_policy', 'internal_traffic_policy'] as const) {
          if (op[k]) find(op.vip)[k] = op[k];
          else delete find(op.vip)[k];
        }
        break;
      case 'delVip':
        s.vips = s.vips.filter((v) => v !== find(op.vip));
        break;
      case 'addBackend': {
        const v = find(op.vip);
        v.backends = v.backends.filter((b) => b.address !== op.address);
        v.backends.push({ address: op.address, weight: op.weight, state: 'active' });
        break;
      }
      case 'setWeight': {
        const b = find(op.vip).backends.find((x) => x.address === op.address && x.state === 'active')!;
        b.weight = op.weight;
        if (op.local) b.local = true;
        else delete b.local;
        break;
      }
      case 'delBackend':
        find(op.vip).backends.find((b) => b.address === op.address && b.state === 'active')!.state = 'draining';
        break;
    }
  }
  return s;
}

t.test('empty to full', async (t) => {
  const plan = diffConfig(full(), empty());
  t.same(plan, [
    { op: 'addVip', vip: vip80, target_port: 8080, node_port: 0, type: 'clusterip', source_ranges: [] },
    { op: 'addBackend', vip: vip80, address: '198.18.1.2', weight: 1, reactivate: false },
    { op: 'addBackend', vip: vip80, address: '198.18.1.3', weight: 2, reactivate: false },
    { op: 'addVip', vip: vip53, target_port: 53, new_len: 251, node_port: 0, type: 'clusterip', source_ranges: [] },
    { op: 'addBackend', vip: vip53, address: '2001:db8:1::2', weight: 1, reactivate: false },
    { op: 'attach', name: 'eth0', mode: 'native', redirect: true },
    { op: 'attach', name: 'eth1', mode: 'auto', redirect: false },
  ]);
  t.same(diffConfig(full(), apply(empty(), plan)), [], 'applying the plan reaches the desired state');
});

t.test('full to empty', async (t) => {
  const plan = diffConfig(parseConfig({}), fullRunning());
  t.same(plan, [
    { op: 'detach', name: 'eth0' },
    { op: 'detach', name: 'eth1' },
    { op: 'delVip', vip: vip80 },
    { op: 'delVip', vip: vip53 },
  ]);
  t.same(apply(fullRunning(), plan), empty());
});

t.test('no-op when equal', async (t) => {
  t.same(diffConfig(full(), fullRunning()), []);
  t.same(diffConfig(parseConfig({}), empty()), []);
});

t.test('conf change', async (t) => {
  const want = full();
  want.conf.timeouts.udp = 120;
  t.same(diffConfig(want, fullRunning()), [{ op: 'setConf', buckets: 131072, timeouts: { ...T, udp: 120 }, nodeport_range: [30000, 32767], nodeport_addresses: [], masquerade_ports: [1024, 29999], changed: ['udp'] }]);
  want.conf.buckets = 1024;
  want.conf.timeouts.tcp_established = 7200;
  const plan = diffConfig(want, fullRunning());
  t.same(plan, [{ op: 'setConf', buckets: 1024, timeouts: { ...T, udp: 120, tcp_established: 7200 }, nodeport_range: [30000, 32767], nodeport_addresses: [], masquerade_ports: [1024, 29999], changed: ['buckets', 'tcp_established', 'udp'] }]);
  t.same(plan.map(formatOp), ['conf buckets 1024 timeout tcp_established 7200 timeout udp 120']);
});

t.test('hash_seed: set when the config gives one that differs, kept when it gives none', async (t) => {
  const running = fullRunning();
  running.conf.hash_seed = 7;
  t.same(diffConfig(full(), running), [], 'no hash_seed in the config: the running one stays');
  const want = full();
  want.conf.hash_seed = 7;
  t.same(diffConfig(want, running), [], 'the same seed: nothing to do');
  want.conf.hash_seed = 3735928559;
  const plan = diffConfig(want, running);
  t.same(plan, [{ op: 'setConf', buckets: 131072, timeouts: T, hash_seed: 3735928559, nodeport_range: [30000, 32767], nodeport_addresses: [], masquerade_ports: [1024, 29999], changed: ['hash_seed'] }]);
  t.same(plan.map(formatOp), ['conf hash_seed 3735928559']);
});

t.test('one backend added, one removed', async (t) => {
  const want = full();
  want.vips[0].backends.push({ address: '198.18.1.4', weight: 1 });
  t.same(diffConfig(want, fullRunning()), [{ op: 'addBackend', vip: vip80, address: '198.18.1.4', weight: 1, reactivate: false }]);

  const fewer = full();
  fewer.vips[0].backends.shift();
  const plan = diffConfig(fewer, fullRunning());
  t.same(plan, [{ op: 'delBackend', vip: vip80, address: '198.18.1.2' }]);
  const after = apply(fullRunning(), plan);
  t.equal(after.vips[0].backends[0].state, 'draining');
  t.same(diffConfig(fewer, after), [], 'a draining backend that stays removed needs nothing');
});

t.test('adds come before deletes within a VIP', async (t) => {
  const want = full();
  want.vips[0].backends = [{ address: '198.18.1.9', weight: 1 }];
  t.same(diffConfig(want, fullRunning()), [
    { op: 'addBackend', vip: vip80, address: '198.18.1.9', weight: 1, reactivate: false },
    { op: 'delBackend', vip: vip80, address: '198.18.1.2' },
    { op: 'delBackend', vip: vip80, address: '198.18.1.3' },
  ]);
});

t.test('a draining backend that reappears is re-activated', async (t) => {
  const running = fullRunning();
  running.vips[0].backends[0].state = 'draining';
  running.vips[0].backends[0].weight = 5;
  const plan = diffConfig(full(), running);
  t.same(plan, [{ op: 'addBackend', vip: vip80, address: '198.18.1.2', weight: 1, reactivate: true }]);
  t.same(diffConfig(full(), apply(running, plan)), []);
  t.equal(formatOp(plan[0]), 'backend reactivate 198.18.100.1/32 tcp port 80 198.18.1.2 weight 1');
});

t.test('an address both draining and active counts as active', async (t) => {
  const running = fullRunning();
  running.vips[0].backends.unshift({ address: '198.18.1.3', weight: 1, state: 'draining' });
  t.same(diffConfig(full(), running), []);
});

t.test('weight change', async (t) => {
  const want = full();
  want.vips[0].backends[1].weight = 7;
  t.same(diffConfig(want, fullRunning()), [{ op: 'setWeight', vip: vip80, address: '198.18.1.3', weight: 7, from: 2 }]);
});

t.test('new_len and target_port changes update the VIP in place', async (t) => {
  const want = full();
  want.vips[0].new_len = 4099;
  t.same(diffConfig(want, fullRunning()), [{ op: 'updateVip', vip: vip80, target_port: 8080, new_len: 4099, node_port: 0, type: 'clusterip', source_ranges: [], changed: ['new_len'] }]);
  want.vips[0].target_port = 8081;
  const plan = diffConfig(want, fullRunning());
  t.same(plan, [{ op: 'updateVip', vip: vip80, target_port: 8081, new_len: 4099, node_port: 0, type: 'clusterip', source_ranges: [], changed: ['target_port', 'new_len'] }]);
  t.same(diffConfig(want, apply(fullRunning(), plan)), []);
});

t.test('a node port added, changed and removed updates the VIP in place', async (t) => {
  const want = full();
  want.vips[0].node_port = 30080;
  const plan = diffConfig(want, fullRunning());
  t.same(plan, [{ op: 'updateVip', vip: vip80, target_port: 8080, node_port: 30080, type: 'clusterip', source_ranges: [], changed: ['node_port'] }]);
  t.same(plan.map(formatOp), ['vip update 198.18.100.1/32 tcp port 80 target 8080 new_len auto nodeport 30080']);
  const running = apply(fullRunning(), plan);
  t.same(diffConfig(want, running), []);
  want.vips[0].node_port = 0;
  t.match(diffConfig(want, running), [{ op: 'updateVip', node_port: 0, type: 'clusterip', source_ranges: [], changed: ['node_port'] }]);
});

t.test('a backend marked local, and a policy set to local, are changes in place', async (t) => {
  const want = full();
  want.vips[0].backends[0].local = true;
  want.vips[0].external_traffic_policy = 'local';
  const plan = diffConfig(want, fullRunning());
  t.same(plan.map(formatOp), [
    'vip update 198.18.100.1/32 tcp port 80 target 8080 new_len auto etp local',
    'backend weight 198.18.100.1/32 tcp port 80 198.18.1.2 1 -> 1 local',
  ]);
  t.same(diffConfig(want, apply(fullRunning(), plan)), []);
});

t.test('VIP identity is (prefix, protocol, port)', async (t) => {
  const want = full();
  want.vips[0].protocol = 'udp';
  const plan = diffConfig(want, fullRunning());
  const udp80 = { ...vip80, protocol: 'udp' };
  t.same(plan, [
    { op: 'delVip', vip: vip80 },
    { op: 'addVip', vip: udp80, target_port: 8080, node_port: 0, type: 'clusterip', source_ranges: [] },
    { op: 'addBackend', vip: udp80, address: '198.18.1.2', weight: 1, reactivate: false },
    { op: 'addBackend', vip: udp80, address: '198.18.1.3', weight: 2, reactivate: false },
  ]);
  t.same(diffConfig(want, apply(fullRunning(), plan)), []);
});

t.test('canonicalisation: textual differences make no operations', async (t) => {
  const running = fullRunning();
  running.vips[0].prefix = '198.18.100.1'; // host prefix without its length
  running.vips[1].prefix = '2001:DB8:100:0::/64';
  running.vips[1].backends[0].address = '2001:0db8:0001:0000:0000:0000:0000:0002';
  running.vips[0].backends[0].address = '::ffff:198.18.1.2';
  t.same(diffConfig(full(), running), []);
  // and a desired config built by hand (not through parseConfig) is canonicalised too
  const want = full();
  want.vips[1].backends[0].address = '2001:db8:1:0::2';
  want.vips[0].prefix = '::ffff:198.18.100.1/128';
  t.same(diffConfig(want, fullRunning()), []);
});

t.test('interfaces: mode and redirect', async (t) => {
  const want = full();
  want.interfaces[1].mode = 'native'; // running eth1 is generic
  t.same(diffConfig(want, fullRunning()), [
    { op: 'detach', name: 'eth1' },
    { op: 'attach', name: 'eth1', mode: 'native', redirect: false },
  ]);
  const redirect = full();
  redirect.interfaces[1].redirect = true;
  t.same(diffConfig(redirect, fullRunning()), [{ op: 'setRedirect', name: 'eth1', redirect: true }]);
  const unknown = fullRunning();
  delete unknown.interfaces[1].redirect;
  t.same(diffConfig(redirect, unknown), [], 'redirect unknown in running state: not compared');
});

t.test('a mixed change, in order, reaches the desired state', async (t) => {
  const want = parseConfig({
    conf: { buckets: 65536 },
    interfaces: [{ name: 'eth2', mode: 'generic' }, { name: 'eth0', mode: 'native', redirect: true }],
    vips: [
      { prefix: '198.18.100.1/32', port: 80, target_port: 8080, new_len: 13, backends: [{ address: '198.18.1.3', weight: 3 }, '198.18.1.5'] },
      { prefix: '198.18.200.0/24', protocol: 'udp', port: 5353, backends: ['198.18.2.1'] },
    ],
  });
  const plan = diffConfig(want, fullRunning());
  t.same(
    plan.map((op: PlanOp) => op.op),
    ['detach', 'setConf', 'delVip', 'updateVip', 'addBackend', 'setWeight', 'delBackend', 'addVip', 'addBackend', 'attach'],
  );
  t.same(plan.map(formatOp), [
    'detach eth1',
    'conf buckets 65536',
    'vip del 2001:db8:100::/64 udp port 53',
    'vip update 198.18.100.1/32 tcp port 80 target 8080 new_len 13',
    'backend add 198.18.100.1/32 tcp port 80 198.18.1.5 weight 1',
    'backend weight 198.18.100.1/32 tcp port 80 198.18.1.3 2 -> 3',
    'backend del 198.18.100.1/32 tcp port 80 198.18.1.2',
    'vip add 198.18.200.0/24 udp port 5353 target 5353 new_len auto',
    'backend add 198.18.200.0/24 udp port 5353 198.18.2.1 weight 1',
    'attach eth2 mode generic',
  ]);
  t.same(diffConfig(want, apply(fullRunning(), plan)), []);
});
