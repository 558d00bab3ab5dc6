/** Exit codes of every pke-agent command (documented in the README). */
export const ExitCode = {
  ok: 0,
  /** The operation failed: a phase, a command, the controller, the host. */
  failure: 1,
  /** Bad input: flags, config file or guestinfo config that does not validate. */
  badInput: 2,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Fields that say where an error happened; all optional, all safe to log. */
export interface ErrorContext {
  phase?: string;
  command?: string;
  exitCode?: number;
  stderrTail?: string;
  url?: string;
  status?: number;
  path?: string;
}

export class PkeError extends Error {
  readonly exitCode: ExitCode;
  readonly context: ErrorContext;

  constructor(message: string, options: { exitCode?: ExitCode; context?: ErrorContext; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = options.exitCode ?? ExitCode.failure;
    this.context = options.context ?? {};
  }
}

/** Bad input from the user: exit 2, and the message names the key or file. */
export class InputError extends PkeError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, { exitCode: ExitCode.badInput, context });
  }
}

/** A host command that failed: carries the command line, its exit code and the tail of its stderr. */
export class CommandError extends PkeError {
  constructor(command: string, exitCode: number | undefined, stderrTail: string, reason?: string) {
    const how = reason ?? (exitCode === undefined ? 'did not run' : `exited ${exitCode}`);
    const tail = stderrTail ? `: ${lastLine(stderrTail)}` : '';
    super(`${command} ${how}${tail}`, { context: { command, exitCode, stderrTail } });
  }
}

/** Adds the phase name to an error's context, keeping everything else it carries. */
export function inPhase(error: unknown, phase: string): PkeError {
  if (error instanceof PkeError) {
    Object.assign(error.context, { phase, ...error.context });
    return error;
  }
  return new PkeError(errorMessage(error), { context: { phase }, cause: error });
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const TAIL_BYTES = 2048;

/** The last part of a command's output, enough to see why it failed. */
export function tail(text: string, bytes = TAIL_BYTES): string {
  const trimmed = text.trimEnd();
  return trimmed.length <= bytes ? trimmed : `…${trimmed.slice(-bytes)}`;
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}
