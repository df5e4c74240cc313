// End to end: the node itself as a client (hostNetwork pods, kubelet probes, curl on the node). XDP
// never sees traffic the node originates, so the socket hooks (bpf/kp_sock.h) attached to a cgroup
// translate at the socket: a process in that cgroup reaches a cluster IP and a node port over TCP and
// UDP, and sees the VIP as its peer. The hooks go on a child cgroup of a cgroup2 mount made outside
// /sys (which `ip netns exec` replaces), so nothing else on the machine is touched.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Backend } from '../../src/testbed/topology.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { CLIENT, e2eHarness, e2eSkipReason, inCgroup } from '../helpers/e2e.js';

const VIP = '198.18.100.61';
const NODE_PORT = 30661;

function cgroupSkipReason(): string | undefined {
  if (!readFileSync('/proc/filesystems', 'utf8').includes('cgroup2')) return 'this kernel has no cgroup2 file system';
  return undefined;
}

const skip = skipUnlessCi(e2eSkipReason() ?? cgroupSkipReason());
if (skip) {
  t.test("end-to-end: the node's own sockets", { skip }, async () => {});
} else {
  run();
}

function run() {
  const { topo, kp, kpJson, watch } = e2eHarness(t, 'host', 2);
  const [b1, b2] = topo.backends as Backend[];
  // A cgroup2 mount of our own, outside /sys, and a child cgroup in it for the test's clients.
  const mnt = `/run/kpbpf-cg-${randomBytes(3).toString('hex')}`;
  const cg = `${mnt}/kpbpf-e2e`;
  mkdirSync(mnt, { recursive: true });
  execFileSync('mount', ['-t', 'cgroup2', 'none', mnt]);
  mkdirSync(cg);
  t.teardown(() => {
    try {
      kp('detach', '--cgroup', cg);
    } catch {
      // detached already, or the data plane is gone
    }
    // Members left by a failed test move back to the mount's root before the child can go.
    for (const pid of readFileSync(`${cg}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
      try {
        writeFileSync(`${mnt}/cgroup.procs`, pid);
      } catch {
        // it exited
      }
    }
    if (existsSync(cg)) rmdirSync(cg);
    execFileSync('umount', [mnt]);
    rmdirSync(mnt);
  });
  /** The test client on the node, inside the served cgroup (or outside it). */
  function fromNode(mode: string, host: string, port: number, count: number, o: { outside?: boolean; timeout?: number } = {}) {
    const cmd = [process.execPath, CLIENT, mode, '--vip', host, '--port', String(port), '--count', String(count), '--timeout', String(o.timeout ?? 2000)];
    const out = topo.exec(topo.node.ns, o.outside ? cmd : inCgroup(cg, cmd), { allowFail: o.outside });
    return out ? JSON.parse(out.trim().split('\n').pop()!) : { ok: 0 };
  }

  t.before(async () => {
    for (const b of topo.backends) await topo.startServers(b);
    kp('attach', ...topo.nodeIfs());
    const r = kpJson('attach', '--cgroup', cg);
    t.match(r, { cgroup: { path: cg, hooks: ['connect4', 'sendmsg4', 'recvmsg4', 'getpeername4'] } });
    for (const [proto, port, target] of [['tcp', '80', '8080'], ['udp', '53', '5353']]) {
      kp('vip', 'add', `${VIP}/32`, 'protocol', proto, 'port', port, 'target', target, 'nodeport', String(NODE_PORT));
      kp('backend', 'add', `${VIP}/32`, 'protocol', proto, 'port', port, b1.addr, b2.addr);
    }
  });

  t.test('show cgroups lists the attachment', async (t) => {
    const list = kpJson('show', 'cgroups');
    t.equal(list.length, 1);
    t.same([...list[0].hooks].sort(), ['connect4', 'getpeername4', 'recvmsg4', 'sendmsg4']);
  });

  for (const [mode, proto, port] of [['http', 'tcp', 80], ['udp', 'udp', 53]] as const) {
    t.test(`${proto.toUpperCase()} from the node to the cluster IP: both backends, and the peer is the VIP`, async (t) => {
      const before = kpJson('show', 'stats').global.sock_xlate;
      const r = fromNode(mode, VIP, port, 30);
      t.equal(r.ok, 30, `all answered (errors: ${(r.errors ?? []).join('; ')})`);
      t.same(r.remotes, [`${VIP}:${port}`], proto === 'tcp' ? 'getpeername shows the VIP' : 'recvmsg shows the VIP as the source');
      t.ok(r.backends[b1.name] > 3 && r.backends[b2.name] > 3, `spread over both: ${JSON.stringify(r.backends)}`);
      t.ok(kpJson('show', 'stats').global.sock_xlate - before >= 30, 'each connection or datagram translated at the socket');
    });

    t.test(`${proto.toUpperCase()} from the node to its own address on the node port`, async (t) => {
      const r = fromNode(mode, topo.node.addr, NODE_PORT, 20);
      t.equal(r.ok, 20, `all answered (errors: ${(r.errors ?? []).join('; ')})`);
      t.same(r.remotes, [`${topo.node.addr}:${NODE_PORT}`]);
    });
  }

  t.test('a process outside the cgroup is not served (the hooks are scoped to it)', async (t) => {
    const r = fromNode('http', VIP, 80, 2, { outside: true, timeout: 500 });
    t.equal(r.ok, 0);
  });

  t.test('one UDP socket keeps its backend while it drains, and picks again when it is flushed', async (t) => {
    // One socket: datagrams 0-2, pause; 3-5 (its backend draining), pause; 6-8 (its backend flushed).
    const pause = `/tmp/kpbpf-udp-${randomBytes(3).toString('hex')}`;
    t.teardown(() => {
      for (const i of [3, 6]) rmSync(`${pause}.${i}`, { force: true });
    });
    const script = `
      const dgram = require('node:dgram'), fs = require('node:fs');
      const [vip, port, pause] = process.argv.slice(1);
      const s = dgram.createSocket('udp4');
      const ask = (i) => new Promise((r) => {
        const t = setTimeout(() => r('timeout'), 2000);
        s.once('message', (m) => { clearTimeout(t); r(m.toString().split('@')[0]); });
        s.send('ping' + i, Number(port), vip);
      });
      (async () => {
        for (let i = 0; i < 9; i++) {
          if (i % 3 === 0 && i > 0) {
            process.stderr.write('paused ' + i + '\\n');
            const deadline = Date.now() + 20000;
            while (!fs.existsSync(pause + '.' + i) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
          }
          process.stderr.write('answer ' + i + ' ' + (await ask(i)) + '\\n');
        }
        s.close();
      })();`;
    const w = watch(['-e', script, VIP, '53', pause], { ns: topo.node.ns, cgroup: cg });
    const answers = () => [...w.err().matchAll(/answer \d (\S+)/g)].map((m) => m[1]);
    t.ok(await w.waitFor('paused 3'), 'the first three datagrams were answered');
    const mine = topo.backends.find((b) => b.name === answers()[0]);
    t.ok(mine, `answered by a backend: ${answers().join(', ')}`);
    if (!mine) return;
    const other = topo.backends.find((b) => b !== mine)!;
    kp('backend', 'del', `${VIP}/32`, 'protocol', 'udp', 'port', '53', mine.addr); // drains: the socket keeps it
    writeFileSync(`${pause}.3`, '');
    t.ok(await w.waitFor('paused 6'), 'three more answered');
    kp('backend', 'del', `${VIP}/32`, 'protocol', 'udp', 'port', '53', 'flush', mine.addr); // flushed: the socket picks again
    writeFileSync(`${pause}.6`, '');
    await w.exited;
    t.same(answers(), [...Array(6).fill(mine.name), ...Array(3).fill(other.name)], 'draining: still its backend; flushed: the other one');
    kp('backend', 'add', `${VIP}/32`, 'protocol', 'udp', 'port', '53', mine.addr);
  });
}
