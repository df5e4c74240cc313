// A private bpffs mount for one run (no dots in the path: libbpf 1.1 rewrites them in pin names).
import { mkdirSync, rmSync } from 'node:fs';
import { run } from './sh.js';

export async function mountBpffs(dir = `/run/kpbench${process.pid}`): Promise<{ dir: string; release: () => Promise<void> }> {
  mkdirSync(dir, { recursive: true });
  await run(['mount', '-t', 'bpf', 'bpf', dir]);
  return {
    dir,
    release: async () => {
      await run(['umount', '-R', dir], { allowFail: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
