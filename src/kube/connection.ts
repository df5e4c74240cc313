// Where the API server is and how to authenticate: the pod's service account (in a DaemonSet) or a
// kubeconfig file, as kube-proxy takes them. Tokens are read from their file at each request, so a
// rotated projected token is picked up without a restart.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { KpError } from '../errors.js';

export interface KubeConnection {
  /** https://host:port (no trailing slash) */
  server: string;
  ca?: Buffer;
  insecureSkipTlsVerify?: boolean;
  cert?: Buffer;
  key?: Buffer;
  /** the bearer token for the next request (read again each time), or undefined */
  token?: () => string | undefined;
  /** where it came from, for messages */
  source: string;
  /** reach the server through this Unix socket rather than TCP (a local proxy; the tests) */
  socketPath?: string;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

const err = (msg: string) => new KpError('KP_ERR_ARG', msg);

function readOrFail(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw err(`${what}: cannot read ${path}: ${(e as Error).message}`);
  }
}

/** A token file read at each call; its last good text is kept if a rotation is half way through. */
function tokenFile(path: string): () => string | undefined {
  let last: string | undefined;
  return () => {
    try {
      const t = readFileSync(path, 'utf8').trim();
      if (t) last = t;
    } catch {
      // a projected volume swaps its files atomically; a read failure keeps the last token
    }
    return last;
  };
}

const hostPortUrl = (host: string, port: string) => `https://${host.includes(':') ? `[${host}]` : host}:${port}`;

/** rest.InClusterConfig: KUBERNETES_SERVICE_HOST/PORT, the service account's token and CA. */
export function inClusterConnection(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): KubeConnection {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw err('--kubernetes: not in a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset); give --kubeconfig FILE');
  }
  const token = tokenFile(`${dir}/token`);
  if (!token()) throw err(`--kubernetes: no service account token in ${dir}/token`);
  return { server: hostPortUrl(host, port), ca: readOrFail(`${dir}/ca.crt`, 'in-cluster CA'), token, source: `service account (${dir})` };
}

type Yaml = Record<string, unknown>;
const isObj = (x: unknown): x is Yaml => typeof x === 'object' && x !== null && !Array.isArray(x);

function named(list: unknown, name: string, kind: string, file: string): Yaml {
  const found = Array.isArray(list) ? list.find((x) => isObj(x) && x.name === name) : undefined;
  if (!isObj(found) || !isObj(found[kind])) throw err(`--kubeconfig ${file}: no ${kind} named '${name}'`);
  return found[kind] as Yaml;
}

/** Bytes from `<field>-data` (base64) or `<field>` (a path, relative to the kubeconfig's folder). */
function material(o: Yaml, field: string, file: string): Buffer | undefined {
  const data = o[`${field}-data`];
  if (typeof data === 'string' && data) return Buffer.from(data, 'base64');
  const path = o[field];
  if (typeof path !== 'string' || !path) return undefined;
  return readOrFail(isAbsolute(path) ? path : resolve(dirname(file), path), `--kubeconfig ${file}: ${field}`);
}

/**
 * A kubeconfig file (clientcmd): the current context's cluster and user, or `context`'s. Tokens,
 * token files and client certificates are supported; exec and auth-provider plugins are not.
 */
export function kubeconfigConnection(file: string, context?: string): KubeConnection {
  let doc: unknown;
  try {
    doc = parseYaml(readOrFail(file, '--kubeconfig').toString('utf8'));
  } catch (e) {
    if (e instanceof KpError) throw e;
    throw err(`--kubeconfig ${file}: not YAML: ${(e as Error).message}`);
  }
  if (!isObj(doc)) throw err(`--kubeconfig ${file}: expected a Config object`);
  const ctxName = context ?? (typeof doc['current-context'] === 'string' ? doc['current-context'] : undefined);
  if (!ctxName) throw err(`--kubeconfig ${file}: no current-context`);
  const ctx = named(doc.contexts, ctxName, 'context', file);
  const cluster = named(doc.clusters, String(ctx.cluster), 'cluster', file);
  const user = ctx.user !== undefined ? named(doc.users, String(ctx.user), 'user', file) : {};
  if (typeof cluster.server !== 'string' || !/^https?:\/\//.test(cluster.server)) throw err(`--kubeconfig ${file}: cluster '${String(ctx.cluster)}' has no https:// server`);
  for (const plugin of ['exec', 'auth-provider']) {
    if (user[plugin] !== undefined) throw err(`--kubeconfig ${file}: user '${String(ctx.user)}' uses ${plugin}, which kpbpf does not run; use a token, token file or client certificate`);
  }
  const tokenText = typeof user.token === 'string' ? user.token : undefined;
  const tokenPath = typeof user.tokenFile === 'string' ? (isAbsolute(user.tokenFile) ? user.tokenFile : resolve(dirname(file), user.tokenFile)) : undefined;
  return {
    server: cluster.server.replace(/\/+$/, ''),
    ca: material(cluster, 'certificate-authority', file),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    cert: material(user, 'client-certificate', file),
    key: material(user, 'client-key', file),
    ...(tokenText ? { token: () => tokenText } : tokenPath ? { token: tokenFile(tokenPath) } : {}),
    source: `kubeconfig ${file} (context ${ctxName})`,
  };
}
