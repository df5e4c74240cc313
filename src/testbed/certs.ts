// A CA and a server certificate for the fake API server, made with openssl (Node has no X.509
// writer). The server certificate names the given IP addresses, as a real API server's does.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCerts {
  dir: string;
  ca: Buffer;
  caFile: string;
  key: Buffer;
  cert: Buffer;
}

export function makeCerts(ips: string[], dir = mkdtempSync(join(tmpdir(), 'kpbpf-certs-'))): TestCerts {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=kpbpf-test-ca');
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=kube-apiserver');
  writeFileSync(join(dir, 'san.ext'), `subjectAltName=${['DNS:kubernetes', ...ips.map((i) => `IP:${i}`)].join(',')}\nextendedKeyUsage=serverAuth\n`);
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.ext');
  return { dir, ca: readFileSync(join(dir, 'ca.crt')), caFile: join(dir, 'ca.crt'), key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.crt')) };
}

/** A kubeconfig for a server with this CA and a token file (read at each request, so it can rotate). */
export function writeKubeconfig(path: string, server: string, caFile: string, tokenFile: string): void {
  writeFileSync(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: test',
      '  cluster:',
      `    server: ${server}`,
      `    certificate-authority: ${caFile}`,
      'users:',
      '- name: kpbpf',
      '  user:',
      `    tokenFile: ${tokenFile}`,
      'contexts:',
      '- name: test',
      '  context:',
      '    cluster: test',
      '    user: kpbpf',
      'current-context: test',
      '',
    ].join('\n'),
  );
}
