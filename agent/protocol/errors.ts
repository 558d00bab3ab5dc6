import { PkeError } from '../core/errors.ts';

/** A failed controller call: says the method, path, status, the server's code and message. */
export class ControllerRequestError extends PkeError {
  /** The API error code (`not-initialized`, `fenced`, ...), when the controller answered with one. */
  readonly code: string | undefined;

  constructor(method: string, path: string, status: number | undefined, code: string | undefined, message: string, cause?: unknown) {
    const what = status === undefined ? message : `${status}${code ? ` ${code}` : ''}: ${message}`;
    super(`controller ${method} ${path}: ${what}`, { context: { url: path, status }, cause });
    this.code = code;
  }
}
