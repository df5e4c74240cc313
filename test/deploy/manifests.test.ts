// The Kubernetes manifests, checked as the API server's validation would check the parts kpbpf
// depends on (no API server or kubectl can run here): kinds and versions, names, selector and
// template labels, volumes behind every mount, RBAC that grants what kube-proxy's
// system:node-proxier grants, a config the daemon accepts, and arguments the CLI accepts.
import t from 'tap';
import { readFileSync, readdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { buildProgram } from '../../src/cli/main.js';
import { readConfFile } from '../../src/kube/daemon.js';
import { kubeconfigConnection } from '../../src/kube/connection.js';

const DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../deploy/kubernetes');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const docs: Array<{ file: string; doc: Obj }> = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((file) =>
    parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
      return { file, doc: d.toJS() as Obj };
    }),
  );
const find = (kind: string) => docs.filter((d) => d.doc.kind === kind).map((d) => d.doc);

const KNOWN: Record<string, string> = {
  ServiceAccount: 'v1',
  ConfigMap: 'v1',
  ClusterRole: 'rbac.authorization.k8s.io/v1',
  ClusterRoleBinding: 'rbac.authorization.k8s.io/v1',
  DaemonSet: 'apps/v1',
};
const DNS1123 = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

t.test('every document: a known kind at its served version, a valid name, namespaced kinds in kube-system', async (t) => {
  t.ok(docs.length >= 5, `${docs.length} documents`);
  for (const { file, doc } of docs) {
    t.equal(doc.apiVersion, KNOWN[doc.kind], `${file}: ${doc.kind} ${doc.metadata?.name}: apiVersion`);
    t.match(doc.metadata?.name, DNS1123, `${file}: ${doc.kind}: metadata.name`);
    if (!doc.kind.startsWith('Cluster')) t.equal(doc.metadata.namespace, 'kube-system', `${file}: ${doc.kind}: namespace`);
  }
});

t.test('RBAC: what system:node-proxier grants, bound to the DaemonSet\'s service account', async (t) => {
  const [role] = find('ClusterRole');
  const grants = (group: string, resource: string, verb: string) => role.rules.some((r: Obj) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
  for (const verb of ['list', 'watch', 'get']) {
    t.ok(grants('', 'services', verb), `services ${verb}`);
    t.ok(grants('', 'nodes', verb), `nodes ${verb}`);
    t.ok(grants('discovery.k8s.io', 'endpointslices', verb), `endpointslices ${verb}`);
  }
  for (const verb of ['create', 'patch']) t.ok(grants('events.k8s.io', 'events', verb) && grants('', 'events', verb), `events ${verb}`);
  t.notOk(role.rules.some((r: Obj) => r.verbs.some((v: string) => ['delete', 'deletecollection', '*'].includes(v))), 'nothing more');
  const [binding] = find('ClusterRoleBinding');
  const [sa] = find('ServiceAccount');
  const [ds] = find('DaemonSet');
  t.same(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
  t.same(binding.subjects, [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);
  t.equal(ds.spec.template.spec.serviceAccountName, sa.metadata.name);
});

t.test('DaemonSet: what the API server requires, and what a kube-proxy replacement needs', async (t) => {
  const [ds] = find('DaemonSet');
  const pod = ds.spec.template.spec;
  t.same(ds.spec.selector.matchLabels, Object.fromEntries(Object.entries(ds.spec.template.metadata.labels).filter(([k]) => k in ds.spec.selector.matchLabels)), 'the selector matches the template labels');
  t.ok(Object.keys(ds.spec.selector.matchLabels).length > 0);
  t.equal(pod.hostNetwork, true, 'the host network (node ports, XDP on the node\'s interfaces)');
  t.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
  t.equal(pod.priorityClassName, 'system-node-critical');
  t.same(pod.tolerations, [{ operator: 'Exists' }], 'tolerates every taint');
  const [c] = pod.containers;
  t.ok(c.name && c.image, 'container name and image');
  t.match(c.env.find((e: Obj) => e.name === 'NODE_NAME'), { valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
  t.equal(c.securityContext.privileged, false, 'capabilities rather than privileged');
  t.same([...c.securityContext.capabilities.add].sort(), ['BPF', 'NET_ADMIN', 'PERFMON', 'SYS_ADMIN']);
  const volumes = new Map(pod.volumes.map((v: Obj) => [v.name, v]));
  for (const m of c.volumeMounts) t.ok(volumes.has(m.name), `mount ${m.mountPath} has its volume ${m.name}`);
  const bpffs = c.volumeMounts.find((m: Obj) => m.mountPath === '/sys/fs/bpf');
  t.equal(bpffs.mountPropagation, 'HostToContainer', 'the host\'s bpffs, with propagation');
  t.match(volumes.get(bpffs.name), { hostPath: { path: '/sys/fs/bpf' } });
  for (const p of [c.livenessProbe, c.readinessProbe]) t.equal(p.httpGet.port, 10256, 'probes on kube-proxy\'s healthz port');
  t.equal(c.livenessProbe.httpGet.path, '/livez');
  t.equal(c.readinessProbe.httpGet.path, '/healthz');
});

t.test('the container\'s arguments are ones kpbpf run accepts, and its files are the ConfigMap\'s', async (t) => {
  const [ds] = find('DaemonSet');
  const [c] = ds.spec.template.spec.containers;
  const [cm] = find('ConfigMap');
  t.same(c.command, ['kpbpf']);
  const { program } = buildProgram({ out: () => {}, err: () => {} });
  const run = program.commands.find((x) => x.name() === 'run')!;
  const flags = new Set(run.options.map((o) => o.long));
  for (const a of c.args.slice(1)) t.ok(flags.has(a.split('=')[0]), `${a}: an option of kpbpf run`);
  const mount = c.volumeMounts.find((m: Obj) => m.name === 'config').mountPath;
  for (const a of c.args.filter((x: string) => x.startsWith('--kubeconfig=') || x.startsWith('--file='))) {
    const file = a.split('=')[1];
    t.equal(dirname(file), mount, `${a} is in the ConfigMap's mount`);
    t.ok(cm.data[file.slice(mount.length + 1)], `${a} is a key of the ConfigMap`);
  }
});

t.test('the ConfigMap: a conf kpbpf accepts; a kubeconfig with the service account\'s token and CA and a real server address', async (t) => {
  const [cm] = find('ConfigMap');
  const dir = mkdtempSync(join(tmpdir(), 'kpbpf-manifest-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'conf.json'), cm.data['conf.json']);
  t.match(readConfFile(join(dir, 'conf.json')), { manageInterfaces: true });
  const kc = parseYaml(cm.data['kubeconfig.conf']) as Obj;
  const cluster = kc.clusters[0].cluster;
  t.equal(cluster['certificate-authority'], '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt');
  t.equal(kc.users[0].user.tokenFile, '/var/run/secrets/kubernetes.io/serviceaccount/token');
  t.notMatch(cluster.server, /kubernetes\.default|10\.96\.0\.1|KUBERNETES_SERVICE/, 'not the kubernetes Service kpbpf itself implements');
  // The kubeconfig is one kpbpf reads (its CA path swapped for a file that exists here).
  writeFileSync(join(dir, 'ca.crt'), 'x');
  writeFileSync(join(dir, 'kubeconfig'), cm.data['kubeconfig.conf'].replace('/var/run/secrets/kubernetes.io/serviceaccount/ca.crt', join(dir, 'ca.crt')));
  t.match(kubeconfigConnection(join(dir, 'kubeconfig')), { server: 'https://CONTROL_PLANE_ENDPOINT:6443' });
});
