// client -> node -> backend over veth pairs, in namespaces this module creates and deletes.
// Addresses: client link 198.18.0.0/24, backend link 198.18.1.0/24, endpoints 198.18.128.0/17
// routed to the backend namespace, which counts (and drops) what arrives in an nft ingress chain.
import { readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { run } from './sh.js';

export interface Topology {
  id: string;
  client: string; // namespace names
  node: string;
  backend: string;
  clientIf: string; // interface names inside their namespace
  nodeIn: string;
  nodeOut: string;
  backendIf: string;
  clientMac: string;
  nodeInMac: string;
  nodeOutMac: string;
  backendMac: string;
  nodeInIndex: number;
  nodeOutIndex: number;
  endpoints: string[]; // counted individually at the backend
}

export const ADDR = {
  client: '198.18.0.1',
  nodeIn: '198.18.0.2',
  nodeOut: '198.18.1.2',
  backend: '198.18.1.1',
  endpointNet: '198.18.128.0/17',
  vipNet: '198.19.0.0/16',
} as const;

const COUNT_TABLE = 'kpbench';

async function sh(ns: string | undefined, ...argv: string[]): Promise<string> {
  return (await run(argv, { ns, timeoutMs: 30_000 })).stdout;
}

async function mac(ns: string, ifname: string): Promise<string> {
  const j = JSON.parse(await sh(ns, 'ip', '-j', 'link', 'show', 'dev', ifname));
  return j[0].address;
}

async function ifindex(ns: string, ifname: string): Promise<number> {
  const j = JSON.parse(await sh(ns, 'ip', '-j', 'link', 'show', 'dev', ifname));
  return j[0].ifindex;
}

/** Build the topology; on any failure it is torn down before the error propagates. */
export async function createTopology(endpoints: string[], id = `${process.pid}`): Promise<Topology> {
  const t: Topology = {
    id,
    client: `kbenchc${id}`,
    node: `kbenchn${id}`,
    backend: `kbenchb${id}`,
    clientIf: 'c0',
    nodeIn: `kbi${id}`, // unique, so the NAPI thread can be found by name
    nodeOut: `kbo${id}`,
    backendIf: 'b0',
    clientMac: '',
    nodeInMac: '',
    nodeOutMac: '',
    backendMac: '',
    nodeInIndex: 0,
    nodeOutIndex: 0,
    endpoints,
  };
  try {
    for (const ns of [t.client, t.node, t.backend]) {
      await sh(undefined, 'ip', 'netns', 'add', ns);
      await sh(ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
      await sh(ns, 'ip', 'link', 'set', 'lo', 'up');
    }
    await sh(t.client, 'ip', 'link', 'add', 'name', t.clientIf, 'type', 'veth', 'peer', 'name', t.nodeIn, 'netns', t.node);
    await sh(t.node, 'ip', 'link', 'add', 'name', t.nodeOut, 'type', 'veth', 'peer', 'name', t.backendIf, 'netns', t.backend);
    await sh(t.client, 'ip', 'addr', 'add', `${ADDR.client}/24`, 'dev', t.clientIf);
    await sh(t.node, 'ip', 'addr', 'add', `${ADDR.nodeIn}/24`, 'dev', t.nodeIn);
    await sh(t.node, 'ip', 'addr', 'add', `${ADDR.nodeOut}/24`, 'dev', t.nodeOut);
    await sh(t.backend, 'ip', 'addr', 'add', `${ADDR.backend}/24`, 'dev', t.backendIf);
    for (const [ns, ifn] of [[t.client, t.clientIf], [t.node, t.nodeIn], [t.node, t.nodeOut], [t.backend, t.backendIf]]) {
      await sh(ns, 'ip', 'link', 'set', ifn, 'up');
    }
    t.clientMac = await mac(t.client, t.clientIf);
    t.nodeInMac = await mac(t.node, t.nodeIn);
    t.nodeOutMac = await mac(t.node, t.nodeOut);
    t.backendMac = await mac(t.backend, t.backendIf);
    t.nodeInIndex = await ifindex(t.node, t.nodeIn);
    t.nodeOutIndex = await ifindex(t.node, t.nodeOut);
    // Node: a router that never ARPs mid-run and accepts sources it has no route back to.
    await sh(t.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0',
      'net.ipv4.conf.default.rp_filter=0', `net.ipv4.conf.${t.nodeIn}.rp_filter=0`, `net.ipv4.conf.${t.nodeOut}.rp_filter=0`);
    await sh(t.node, 'ip', 'route', 'add', ADDR.endpointNet, 'via', ADDR.backend, 'dev', t.nodeOut);
    await sh(t.node, 'ip', 'neigh', 'replace', ADDR.backend, 'lladdr', t.backendMac, 'dev', t.nodeOut, 'nud', 'permanent');
    await sh(t.node, 'ip', 'neigh', 'replace', ADDR.client, 'lladdr', t.clientMac, 'dev', t.nodeIn, 'nud', 'permanent');
    await sh(t.client, 'ip', 'route', 'add', ADDR.vipNet, 'via', ADDR.nodeIn);
    await sh(t.client, 'ip', 'neigh', 'replace', ADDR.nodeIn, 'lladdr', t.nodeInMac, 'dev', t.clientIf, 'nud', 'permanent');
    // XDP_REDIRECT into a veth needs NAPI on the receiving peer: GRO provides it without a program.
    await sh(t.backend, 'ethtool', '-K', t.backendIf, 'gro', 'on');
    await sh(t.node, 'ethtool', '-K', t.nodeOut, 'gro', 'on');
    await pinNodeNapi(t);
    await run(['nft', '-f', '-'], { ns: t.backend, input: countRuleset(t), timeoutMs: 30_000 });
    return t;
  } catch (e) {
    await destroyTopology(t);
    throw e;
  }
}

/** The generator runs on CPU 0 (taskset). Without this, the node's receive processing would run
 * in the sender's context on the same CPU; with GRO the node's ingress veth polls in NAPI, and threaded
 * NAPI moves that poll (XDP, stack, forwarding, delivery to the backend) to a kthread pinned to CPU 1. */
async function pinNodeNapi(t: Topology): Promise<void> {
  if (availableParallelism() < 2) return;
  await sh(t.node, 'ethtool', '-K', t.nodeIn, 'gro', 'on');
  await sh(t.node, 'sh', '-c', `echo 1 > /sys/class/net/${t.nodeIn}/threaded`);
  const ps = await sh(undefined, 'ps', '-e', '-o', 'pid=,comm=');
  const prefix = `napi/${t.nodeIn}`.slice(0, 15); // comm is cut at 15 characters
  for (const [pid, comm] of ps.split('\n').map((l) => l.trim().split(/\s+/))) {
    if (comm?.startsWith(prefix)) await sh(undefined, 'taskset', '-p', '-c', '1', pid);
  }
}

function countRuleset(t: Topology): string {
  const rules = t.endpoints.map((ep) => `\t\tip daddr ${ep} counter drop comment "${ep}"`);
  return [
    `table netdev ${COUNT_TABLE} {`,
    '\tchain in {',
    `\t\ttype filter hook ingress device ${t.backendIf} priority 0; policy accept;`,
    ...rules,
    '\t\tip daddr 198.18.0.0/15 counter drop comment "other"',
    '\t}',
    '}',
    '',
  ].join('\n');
}

export interface Delivered {
  total: number; // every IPv4 packet to 198.18.0.0/15 that reached the backend
  perEndpoint: Record<string, number>;
}

/** Counters of the backend's ingress chain. */
export async function readDelivered(t: Topology): Promise<Delivered> {
  const j = JSON.parse(await sh(t.backend, 'nft', '-j', 'list', 'chain', 'netdev', COUNT_TABLE, 'in'));
  const perEndpoint: Record<string, number> = {};
  let total = 0;
  for (const item of j.nftables) {
    const r = item.rule;
    if (!r) continue;
    const c = r.expr.find((e: Record<string, unknown>) => 'counter' in e)?.counter;
    if (!c) continue;
    perEndpoint[r.comment] = c.packets;
    total += c.packets;
  }
  return { total, perEndpoint };
}

/** Deletes the namespaces (and with them veths, rules and attached XDP programs). Never throws. */
export async function destroyTopology(t: Topology): Promise<void> {
  for (const ns of [t.client, t.node, t.backend]) {
    await run(['ip', 'netns', 'del', ns], { allowFail: true, timeoutMs: 30_000 }).catch(() => undefined);
  }
}

/** Namespaces a killed run of this harness left behind: named kbench[cnb]<pid>, pid no longer alive. */
export function staleNamespaces(): string[] {
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  try {
    return readdirSync('/run/netns').filter((n) => {
      const m = /^kbench[cnb](\d+)$/.exec(n);
      return m !== null && !alive(Number(m[1]));
    });
  } catch {
    return [];
  }
}
