// What every command gets: output streams, global options, and the live data plane opened on demand.
import type { Command } from 'commander';
import { Control } from '../dataplane/control.js';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export interface GlobalOptions {
  bpffs?: string;
  json?: boolean;
}

export class CliContext {
  private control?: Control;

  constructor(
    readonly io: CliIo,
    private readonly program: Command,
  ) {}

  get options(): GlobalOptions {
    return this.program.opts<GlobalOptions>();
  }

  /**
   * The running data plane; loads and pins it first when `load` is set and nothing is pinned yet.
   * `write` (the default) holds the writer lock until the command ends; reads pass `write: false`.
   */
  dataplane(opts: { load?: boolean; buckets?: number; write?: boolean; reload?: boolean } = {}): Control {
    if (!this.control) {
      this.control = Control.open({ bpffs: this.options.bpffs, load: opts.load ?? true, buckets: opts.buckets, write: opts.write ?? true, reload: opts.reload });
      this.control.warn = (m) => this.io.err(`kpbpf: warning: ${m}\n`);
      const migrated = this.control.dp.migrated;
      if (migrated?.length) this.io.err(`kpbpf: took over a data plane an older kpbpf loaded, connections kept; ${migrated.join('; ')}\n`);
    }
    return this.control;
  }

  print(value: unknown, text: () => string): void {
    if (this.options.json) this.io.out(JSON.stringify(value, null, 2) + '\n');
    else this.io.out(text());
  }

  close(): void {
    this.control?.close();
    this.control = undefined;
  }
}
