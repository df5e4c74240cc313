// A data plane loaded and pinned in a private bpffs (1024 buckets), purged and unmounted at
// teardown, and the connection the crash and upgrade tests keep an eye on.
import type { Test } from 'tap';
import { Control } from '../../src/dataplane/control.js';
import { pinRoot } from '../../src/loader/index.js';
import * as c from '../../src/maps/codecs.js';
import { privateBpffs } from '../loader/fixtures/helpers.js';

export const FLOW: c.FlowKey = { saddr: '198.18.0.10', daddr: '198.18.10.1', sport: 40000, dport: 80, proto: 6 };

/** A connection record with every field zero but those given. */
export const ctRecord = (o: Partial<c.Ct>): c.Ct => ({ ...c.ct.decode(Buffer.alloc(c.ct.size)), ...o });

/** The bpffs, its pin directory, and the data plane opened as a writer (the caller closes it). */
export function pinnedDataPlane(t: Test, name: string): { bpffs: string; pinDir: string; control: Control } {
  const fs = privateBpffs(name);
  t.teardown(() => {
    try {
      Control.open({ bpffs: fs.dir, load: false, write: true }).purge();
    } catch {
      /* nothing pinned */
    }
    fs.umount();
  });
  return { bpffs: fs.dir, pinDir: pinRoot({ bpffs: fs.dir }), control: Control.open({ bpffs: fs.dir, load: true, write: true, buckets: 1024 }) };
}
