// Every struct of kp_shared.h, as compiled into BPF objects, has the size and field offsets
// the codecs use (src/maps/codecs.ts LAYOUTS), and network-order fields are the __be ones.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { LAYOUT_VERSION, LAYOUTS, NET_ORDER_FIELDS } from '../../src/maps/codecs.js';
import { buildFixture, REAL_OBJECT, removeFixture } from '../loader/fixtures/helpers.js';
import { skipUnlessCi } from '../helpers/ci.js';

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: Array<{ name: string; type_id: number; bits_offset: number }>;
}

function readBtf(obj: string): Map<number, BtfType> {
  const out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', obj], { maxBuffer: 64 << 20 }).toString();
  const types = (JSON.parse(out) as { types: BtfType[] }).types;
  return new Map(types.map((x) => [x.id, x]));
}

function sizeOf(btf: Map<number, BtfType>, id: number): number {
  const ty = btf.get(id)!;
  if (ty.kind === 'TYPEDEF' || ty.kind === 'CONST' || ty.kind === 'VOLATILE') return sizeOf(btf, ty.type_id!);
  if (ty.kind === 'ARRAY') return ty.nr_elems! * sizeOf(btf, ty.type_id!);
  return ty.size!;
}

/** The typedef chain's names, e.g. ['__be16', '__u16'], to spot network-order fields. */
function typedefNames(btf: Map<number, BtfType>, id: number): string[] {
  const ty = btf.get(id)!;
  return ty.kind === 'TYPEDEF' ? [ty.name, ...typedefNames(btf, ty.type_id!)] : [];
}

function checkObject(t: Test, obj: string): void {
  const btf = readBtf(obj);
  for (const [name, layout] of Object.entries(LAYOUTS)) {
    const st = [...btf.values()].find((x) => x.kind === 'STRUCT' && x.name === name);
    if (!st) {
      t.fail(`struct ${name} is not in ${obj}'s BTF (is a map using it?)`);
      continue;
    }
    t.equal(st.size, layout.size, `${name}: size`);
    const fields = layout.fields as Record<string, readonly [number, number]>;
    t.same(st.members!.map((m) => m.name).sort(), Object.keys(fields).sort(), `${name}: field names`);
    for (const m of st.members!) {
      const want = fields[m.name];
      if (!want) continue;
      t.equal(m.bits_offset % 8, 0, `${name}.${m.name}: not a bitfield`);
      t.equal(m.bits_offset / 8, want[0], `${name}.${m.name}: offset`);
      t.equal(sizeOf(btf, m.type_id), want[1], `${name}.${m.name}: size`);
    }
    const be = st.members!.filter((m) => typedefNames(btf, m.type_id).some((n) => n.startsWith('__be'))).map((m) => m.name);
    t.same(be.sort(), [...NET_ORDER_FIELDS[name as keyof typeof LAYOUTS]].sort(), `${name}: network-order fields`);
  }
}

t.test('fixture object built from kp_shared.h', async (t) => {
  const obj = buildFixture('mini');
  t.teardown(() => removeFixture(obj));
  checkObject(t, obj);
});

const noObject = skipUnlessCi(existsSync(REAL_OBJECT) ? false : `${REAL_OBJECT} is missing: run npm run build:bpf first`);
t.test('the data plane object build/kp.bpf.o', { skip: noObject }, async (t) => {
  checkObject(t, REAL_OBJECT);
});

t.test('the layout version of the codecs is the header\'s KP_LAYOUT_VERSION', async (t) => {
  const header = readFileSync(new URL('../../bpf/kp_shared.h', import.meta.url), 'utf8');
  const m = /#define KP_LAYOUT_VERSION (\d+)/.exec(header);
  t.ok(m, 'defined in kp_shared.h');
  t.equal(LAYOUT_VERSION, Number(m![1]));
});
