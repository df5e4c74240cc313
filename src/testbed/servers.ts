// Backend servers for the demo and end-to-end tests: an HTTP server that names its backend and a UDP echo.
// Run inside a backend namespace: node dist/testbed/servers.js --name b1 --tcp 8080 --udp 5353
import http from 'node:http';
import dgram from 'node:dgram';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    tcp: { type: 'string' },
    udp: { type: 'string' },
    udp6: { type: 'boolean', default: false },
  },
});
const name = values.name ?? 'backend';

if (values.tcp) {
  const server = http.createServer((req, res) => {
    // Bulk transfers (client.js bulk): POST counts what it received; GET /bytes/N sends N bytes.
    if (req.method === 'POST') {
      let received = 0;
      req.on('data', (c: Buffer) => (received += c.length));
      req.on('end', () => res.end(JSON.stringify({ backend: name, received })));
      return;
    }
    const bytes = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
    if (bytes) {
      const n = Math.min(Number(bytes[1]), 16 << 20); // bounded by design
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n, 'x-backend': name });
      res.end(Buffer.alloc(n, 0x78));
      return;
    }
    const body = JSON.stringify({ backend: name, client: `${req.socket.remoteAddress}:${req.socket.remotePort}`, local: `${req.socket.localAddress}:${req.socket.localPort}` });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(Number(values.tcp), () => process.stdout.write(`tcp ${values.tcp} ready\n`));
}

if (values.udp) {
  const sock = dgram.createSocket(values.udp6 ? 'udp6' : 'udp4');
  sock.on('message', (msg, rinfo) => {
    // name@peer: the client address this backend saw (masqueraded or not), then the datagram.
    sock.send(Buffer.from(`${name}@${rinfo.address}:${msg.toString()}`), rinfo.port, rinfo.address);
  });
  sock.bind(Number(values.udp), () => process.stdout.write(`udp ${values.udp} ready\n`));
}

process.on('SIGTERM', () => process.exit(0));
