import {
  accessSync,
  closeSync,
  constants as fsConstants,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { CommandError, tail } from '../core/errors.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import { parseUnitStates, UNIT_STATE_PROPERTIES, type UnitState } from './unit-state.ts';

export interface HostOptions {
  /** Every absolute path the agent touches is taken below this directory. Default `/`. */
  root?: string;
  /** PATH used to find commands; tests put their stand-in binaries first. */
  path?: string;
  log?: Logger;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  /** Exit codes that are answers rather than failures (e.g. 1 for "not found"). */
  okExitCodes?: number[];
  /** Called with each line of output as it arrives, for streaming long commands to the log. */
  onLine?: (stream: 'stdout' | 'stderr', line: string) => void;
  env?: Record<string, string>;
  /** Shown instead of the arguments in logs and errors, when they carry secrets. */
  displayArgs?: string[];
  /** Stops the command (SIGTERM) when aborted; the run then fails saying it was stopped. */
  signal?: AbortSignal;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface WriteOptions {
  mode?: number;
}

/**
 * The one door to the machine: commands, files and services. Phases never touch `fs` or
 * spawn processes themselves, so tests can point the same logic at a scratch root and at
 * stand-in binaries. execa and write-file-atomic load at their first use: `--help`, `status`
 * and `bootstrap --list-phases` run no command and write no file.
 *
 * Files are read and written with Node's synchronous calls (behind the same async methods).
 * They are small local files in a run that does one thing at a time, and each asynchronous
 * call is a trip through libuv's thread pool: an atomic write makes about fifteen of them, and
 * on a busy machine the agent waits to be scheduled again after every one.
 */
export class Host {
  readonly root: string;
  readonly searchPath: string;
  private readonly log: Logger;

  constructor(options: HostOptions = {}) {
    this.root = path.resolve(options.root ?? '/');
    this.searchPath = options.path ?? process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';
    this.log = options.log ?? silentLogger;
  }

  /** The real location of an absolute node path such as `/etc/kubernetes/pki/ca.crt`. */
  file(nodePath: string): string {
    if (!path.isAbsolute(nodePath)) throw new Error(`host path must be absolute: ${nodePath}`);
    return path.join(this.root, nodePath);
  }

  async exists(nodePath: string): Promise<boolean> {
    try {
      accessSync(this.file(nodePath), fsConstants.F_OK);
      return true;
    } catch {
      return false;
    }
  }

  async readText(nodePath: string): Promise<string | undefined> {
    const bytes = await this.readBytes(nodePath);
    return bytes?.toString('utf8');
  }

  async readBytes(nodePath: string): Promise<Buffer | undefined> {
    try {
      return readFileSync(this.file(nodePath));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async fileMode(nodePath: string): Promise<number | undefined> {
    try {
      return statSync(this.file(nodePath)).mode & 0o7777;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async list(nodeDir: string): Promise<string[]> {
    try {
      return readdirSync(this.file(nodeDir)).sort();
    } catch (error) {
      if (isNotFound(error)) return [];
      throw error;
    }
  }

  /** Writes through a temporary file, fsync and rename: readers see the old or the new bytes, never half. */
  async writeFile(nodePath: string, data: string | Buffer, options: WriteOptions = {}): Promise<void> {
    const target = this.file(nodePath);
    mkdirSync(path.dirname(target), { recursive: true });
    const { default: writeFileAtomic } = await import('write-file-atomic');
    writeFileAtomic.sync(target, data, { mode: options.mode ?? 0o644, fsync: true });
  }

  /**
   * Writes into a file that must exist, without a temporary copy: for kernel settings under
   * /proc/sys, which take a write but no new file or rename. A missing file fails (ENOENT).
   */
  async writeInPlace(nodePath: string, data: string): Promise<void> {
    const fd = openSync(this.file(nodePath), fsConstants.O_WRONLY | fsConstants.O_TRUNC);
    try {
      writeSync(fd, data);
    } finally {
      closeSync(fd);
    }
  }

  async ensureDir(nodePath: string, mode = 0o755): Promise<void> {
    mkdirSync(this.file(nodePath), { recursive: true, mode });
  }

  async remove(nodePath: string): Promise<void> {
    rmSync(this.file(nodePath), { force: true, recursive: true });
  }

  /**
   * Runs a command found on the host's PATH. A non-zero exit (other than `okExitCodes`), a
   * timeout or a missing binary throws a CommandError that carries the stderr tail.
   */
  async run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
    const { execa } = await import('execa');
    const shown = [command, ...(options.displayArgs ?? args)].join(' ');
    const started = Date.now();
    const child = execa(command, args, {
      env: { ...process.env, ...options.env, PATH: this.searchPath, PKE_ROOT: this.root },
      extendEnv: false,
      input: options.input,
      stdin: options.input === undefined ? 'ignore' : 'pipe',
      timeout: options.timeoutMs,
      cancelSignal: options.signal,
      reject: false,
      stripFinalNewline: false,
    });
    if (options.onLine) streamLines(child, options.onLine);
    const result = await child;
    const stdout = String(result.stdout ?? '');
    const stderr = String(result.stderr ?? '');
    this.log.debug('host.command', { command: shown, exitCode: result.exitCode, ms: Date.now() - started });

    if (result.exitCode === undefined) {
      const reason =
        (result as { code?: string }).code === 'ENOENT'
          ? 'was not found on PATH'
          : result.timedOut
            ? `timed out after ${options.timeoutMs} ms`
            : result.isCanceled
              ? 'was stopped'
              : `did not finish (${result.signal ?? result.shortMessage})`;
      throw new CommandError(shown, undefined, tail(stderr), reason);
    }
    if (result.exitCode !== 0 && !(options.okExitCodes ?? []).includes(result.exitCode)) {
      throw new CommandError(shown, result.exitCode, tail(stderr || stdout));
    }
    return { exitCode: result.exitCode, stdout, stderr };
  }

  /** The full path of a command on the host's PATH, or undefined. */
  async which(command: string): Promise<string | undefined> {
    for (const dir of this.searchPath.split(path.delimiter)) {
      if (!dir) continue;
      const candidate = path.join(dir, command);
      try {
        accessSync(candidate, fsConstants.X_OK);
        return candidate;
      } catch {
        // not in this directory
      }
    }
    return undefined;
  }

  /** systemd units, through systemctl (a stand-in in tests). */
  readonly service = {
    enable: (unit: string) => this.run('systemctl', ['enable', unit]).then(() => undefined),
    enableNow: (unit: string) => this.run('systemctl', ['enable', '--now', unit]).then(() => undefined),
    start: (unit: string) => this.run('systemctl', ['start', unit]).then(() => undefined),
    restart: (unit: string) => this.run('systemctl', ['restart', unit]).then(() => undefined),
    stop: (unit: string) => this.run('systemctl', ['stop', unit]).then(() => undefined),
    disableNow: (unit: string) => this.run('systemctl', ['disable', '--now', unit]).then(() => undefined),
    reloadOrRestart: (unit: string) => this.run('systemctl', ['reload-or-restart', unit]).then(() => undefined),
    /** Whether each unit is active and enabled, from one `systemctl show` for all of them. */
    states: async <U extends string>(units: readonly U[]): Promise<Record<U, UnitState>> => {
      const args = ['show', `--property=${UNIT_STATE_PROPERTIES.join(',')}`, ...units];
      return parseUnitStates(units, (await this.run('systemctl', args)).stdout, ['systemctl', ...args].join(' '));
    },
    isEnabled: async (unit: string) =>
      (await this.run('systemctl', ['is-enabled', '--quiet', unit], { okExitCodes: [1, 4] })).exitCode === 0,
  };
}

function streamLines(
  child: { stdout: NodeJS.ReadableStream | null; stderr: NodeJS.ReadableStream | null },
  onLine: (stream: 'stdout' | 'stderr', line: string) => void,
): void {
  for (const name of ['stdout', 'stderr'] as const) {
    const stream = child[name];
    if (!stream) continue;
    let pending = '';
    stream.on('data', (chunk: Buffer | string) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) onLine(name, line);
    });
    stream.on('end', () => {
      if (pending.trim()) onLine(name, pending);
    });
  }
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
