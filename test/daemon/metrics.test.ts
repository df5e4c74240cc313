// /metrics' exposition (src/daemon/metrics.ts) against a stand-in for the data plane: scrapes that
// come together share one reading of the maps and one text, a failed one is not kept.
import t from 'tap';
import { createMetrics } from '../../src/daemon/metrics.js';
import type { Control } from '../../src/dataplane/control.js';

function fakeControl(o: { fail?: boolean } = {}) {
  let reads = 0;
  const control = {
    stats() {
      reads++;
      if (o.fail) throw new Error('maps unreadable');
      return {
        global: { tx_redirect: 3 },
        vips: [{ id: 1, prefix: '198.18.100.1/32', protocol: 'tcp', port: 80, targetPort: 80, newLen: 7, counters: { existingPkts: 5, firstPkts: 1, untrackedPkts: 0, noServerPkts: 0, bytes: 300, replyPkts: 4, replyBytes: 200 }, backends: [{ address: '198.18.1.2', port: 80, packets: 6, bytes: 300 }] }],
      };
    },
    dp: { maps: { ct: { count: () => 2, info: { maxEntries: 2048 } } } },
  } as unknown as Control;
  return { control, reads: () => reads };
}

t.test('scrapes that come together share one reading and one text', async (t) => {
  const f = fakeControl();
  const m = createMetrics(() => f.control);
  const metrics = m.registry.metrics.bind(m.registry);
  let made = 0;
  m.registry.metrics = async () => (made++, metrics());
  const texts = await Promise.all([m.text(), m.text(), m.text()]);
  t.equal(f.reads(), 1, 'the maps were read once');
  t.equal(made, 1, 'the text was made once');
  t.equal(new Set(texts).size, 1);
  t.match(texts[0], /kpbpf_vip_packets_total\{vip="198\.18\.100\.1\/32",protocol="tcp",port="80",kind="existing"\} 5/);
  t.match(texts[0], /kpbpf_backend_packets_total\{vip="198\.18\.100\.1\/32",protocol="tcp",port="80",backend="198\.18\.1\.2:80"\} 6/);
  t.match(texts[0], /kpbpf_packets_total\{reason="tx_redirect"\} 3/);
});

t.test('a failed reading is not served to the next scrape', async (t) => {
  const f = fakeControl({ fail: true });
  const m = createMetrics(() => f.control);
  await t.rejects(m.text(), /maps unreadable/);
  await t.rejects(m.text(), /maps unreadable/);
  t.equal(f.reads(), 2, 'read again');
});
