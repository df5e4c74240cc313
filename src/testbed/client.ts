// Traffic through a VIP for the demo and end-to-end tests. Prints one JSON line with what happened.
// node dist/testbed/client.js http --vip 198.18.100.10 --port 80 --count 50
// node dist/testbed/client.js udp --vip 198.18.100.10 --port 53 --count 50
// node dist/testbed/client.js keepalive --vip ... --port 80 --count 5 --pause-file F (waits for F between requests)
// node dist/testbed/client.js bulk --vip ... --port 80 --count 3 --bytes 300000 (each: an upload, then a download)
import http from 'node:http';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    vip: { type: 'string' },
    port: { type: 'string' },
    count: { type: 'string', default: '20' },
    timeout: { type: 'string', default: '3000' },
    'pause-file': { type: 'string' },
    bytes: { type: 'string', default: '300000' },
  },
});
const vip = values.vip!;
const port = Number(values.port);
const count = Math.min(Number(values.count), 10_000); // bounded by design
const timeoutMs = Number(values.timeout);

function get(agent: http.Agent | false): Promise<{ backend: string; remote: string; seenAs: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: vip, port, path: '/', agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        try {
          const parsed = JSON.parse(body);
          // seenAs: the client address the backend saw (its peer), without the port.
          resolve({ backend: parsed.backend, remote: `${res.socket?.remoteAddress}:${res.socket?.remotePort}`, seenAs: String(parsed.client).replace(/:\d+$/, '').replace(/^::ffff:/, '') });
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function httpRun() {
  const backends: Record<string, number> = {};
  const remotes = new Set<string>();
  const seenAs = new Set<string>();
  const seenBy: Record<string, string[]> = {};
  let ok = 0;
  const errors: string[] = [];
  for (let i = 0; i < count; i++) {
    try {
      const r = await get(false);
      ok++;
      backends[r.backend] = (backends[r.backend] ?? 0) + 1;
      remotes.add(r.remote);
      seenAs.add(r.seenAs);
      seenAlso(seenBy, r.backend, r.seenAs);
    } catch (e) {
      errors.push(String((e as Error).message));
    }
  }
  return { ok, failed: count - ok, backends, remotes: [...remotes], seenAs: [...seenAs], seenBy, errors: errors.slice(0, 5) };
}

/** One request of a bulk transfer: resolves with the bytes the other side got (upload) or sent (download). */
function transfer(upload: boolean, bytes: number): Promise<{ backend: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: vip, port, method: upload ? 'POST' : 'GET', path: upload ? '/' : `/bytes/${bytes}`, agent: false, timeout: timeoutMs }, (res) => {
      let got = 0;
      let body = '';
      res.on('data', (c: Buffer) => {
        got += c.length;
        if (upload) body += c;
      });
      res.on('end', () => {
        try {
          resolve(upload ? { backend: JSON.parse(body).backend, bytes: JSON.parse(body).received } : { backend: String(res.headers['x-backend']), bytes: got });
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`timeout (${upload ? 'upload' : 'download'})`)));
    req.on('error', reject);
    req.end(upload ? Buffer.alloc(bytes, 0x79) : undefined);
  });
}

async function bulkRun() {
  const bytes = Math.min(Number(values.bytes), 16 << 20); // bounded by design
  let ok = 0;
  const errors: string[] = [];
  const backends: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    for (const upload of [true, false]) {
      try {
        const r = await transfer(upload, bytes);
        if (r.bytes !== bytes) throw new Error(`${upload ? 'upload' : 'download'}: ${r.bytes} of ${bytes} bytes`);
        ok++;
        backends[r.backend] = (backends[r.backend] ?? 0) + 1;
      } catch (e) {
        errors.push(String((e as Error).message));
      }
    }
  }
  return { ok, failed: 2 * count - ok, backends, errors: errors.slice(0, 5) };
}

/** seenBy[backend]: the client addresses that backend saw, each once. */
function seenAlso(seenBy: Record<string, string[]>, backend: string, addr: string): void {
  const list = (seenBy[backend] ??= []);
  if (!list.includes(addr)) list.push(addr);
}

async function keepaliveRun() {
  // One TCP connection, several requests; between requests the test may change the backends.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const seen: string[] = [];
  const ports = new Set<number>();
  for (let i = 0; i < count; i++) {
    const pause = values['pause-file'];
    if (pause && i > 0) {
      const deadline = Date.now() + 20_000;
      while (!existsSync(`${pause}.${i}`) && Date.now() < deadline) await sleep(50);
    }
    const r = await get(agent);
    seen.push(r.backend);
    process.stderr.write(`request ${i} done\n`);
    for (const s of agent.freeSockets[`${vip}:${port}:`] ?? []) ports.add(s.localPort ?? 0);
  }
  agent.destroy();
  return { backends: seen, localPorts: [...ports] };
}

async function udpRun() {
  const backends: Record<string, number> = {};
  const seenBy: Record<string, string[]> = {};
  const from = new Set<string>();
  const localPorts = new Set<number>();
  let ok = 0;
  for (let i = 0; i < count; i++) {
    // One socket is one flow: a fresh socket per datagram makes each a new flow.
    const s = dgram.createSocket(vip.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((r) => s.bind(0, r));
    localPorts.add(s.address().port); // the kernel may hand out a port again: that is the same flow
    const reply = await new Promise<{ msg: string; from: string } | undefined>((resolve) => {
      const t = setTimeout(() => resolve(undefined), timeoutMs);
      s.once('message', (msg, rinfo) => {
        clearTimeout(t);
        resolve({ msg: msg.toString(), from: `${rinfo.address}:${rinfo.port}` });
      });
      s.send(Buffer.from(`ping${i}`), port, vip);
    });
    s.close();
    if (reply && reply.msg.endsWith(`:ping${i}`)) {
      ok++;
      const head = reply.msg.slice(0, reply.msg.lastIndexOf(':')); // name@address the backend saw
      const at = head.indexOf('@');
      const name = at < 0 ? head : head.slice(0, at);
      backends[name] = (backends[name] ?? 0) + 1;
      if (at >= 0) seenAlso(seenBy, name, head.slice(at + 1).replace(/^::ffff:/, ''));
      from.add(reply.from);
    }
  }
  return { ok, failed: count - ok, backends, remotes: [...from], seenBy, flows: localPorts.size };
}

const mode = positionals[0];
const run = mode === 'http' ? httpRun : mode === 'udp' ? udpRun : mode === 'keepalive' ? keepaliveRun : mode === 'bulk' ? bulkRun : undefined;
if (!run) {
  process.stderr.write('usage: client.js http|udp|keepalive|bulk --vip ADDR --port N [--count N] [--bytes N]\n');
  process.exit(2);
}
process.stdout.write(JSON.stringify(await run()) + '\n');
