// Live progress of the lab's nodes: a table redrawn in place on a terminal, one plain line per
// change otherwise (CI logs, pipes).

export interface NodeProgress {
  name: string;
  role: string;
  phase: string;
  state: 'waiting' | 'running' | 'done' | 'failed';
  detail: string;
  startedAt: number;
  endedAt?: number;
}

export class ProgressView {
  private readonly nodes = new Map<string, NodeProgress>();
  private readonly tty: boolean;
  private drawnLines = 0;
  private readonly started = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private readonly out: NodeJS.WriteStream;

  constructor(out: NodeJS.WriteStream = process.stdout) {
    this.out = out;
    this.tty = Boolean(out.isTTY) && !process.env.CI;
  }

  add(name: string, role: string): void {
    this.nodes.set(name, { name, role, phase: '-', state: 'waiting', detail: '', startedAt: Date.now() });
    if (this.tty && !this.timer) this.timer = setInterval(() => this.draw(), 250);
  }

  update(name: string, change: Partial<Omit<NodeProgress, 'name' | 'role'>>): void {
    const node = this.nodes.get(name);
    if (!node) return;
    const before = `${node.phase}/${node.state}`;
    Object.assign(node, change);
    if (this.tty) this.draw();
    else if (`${node.phase}/${node.state}` !== before) this.line(node);
  }

  /** A message above the table (or a plain line). */
  note(text: string): void {
    if (this.tty) {
      this.clear();
      this.out.write(`${text}\n`);
      this.draw();
    } else this.out.write(`${stamp(this.started)} ${text}\n`);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty) this.draw();
    this.drawnLines = 0;
  }

  private line(node: NodeProgress): void {
    const detail = node.detail ? ` ${node.detail}` : '';
    this.out.write(`${stamp(this.started)} ${node.name.padEnd(4)} ${node.phase.padEnd(12)} ${node.state}${detail}\n`);
  }

  private clear(): void {
    if (this.drawnLines > 0) this.out.write(`\x1b[${this.drawnLines}A\x1b[0J`);
    this.drawnLines = 0;
  }

  private draw(): void {
    this.clear();
    const rows = [...this.nodes.values()].map((node) => {
      const seconds = (((node.endedAt ?? Date.now()) - node.startedAt) / 1000).toFixed(1).padStart(6);
      const mark = node.state === 'done' ? 'ok' : node.state === 'failed' ? 'FAILED' : node.state === 'running' ? '..' : '';
      return `  ${node.name.padEnd(4)} ${node.role.padEnd(7)} ${node.phase.padEnd(13)} ${mark.padEnd(7)} ${seconds}s  ${node.detail.slice(0, 60)}`;
    });
    const header = `  ${'NODE'.padEnd(4)} ${'ROLE'.padEnd(7)} ${'PHASE'.padEnd(13)} ${'STATE'.padEnd(7)} ${'TIME'.padStart(7)}  DETAIL`;
    const text = [header, ...rows].join('\n');
    this.out.write(`${text}\n`);
    this.drawnLines = rows.length + 1;
  }
}

function stamp(since: number): string {
  return `[${((Date.now() - since) / 1000).toFixed(1).padStart(6)}s]`;
}
