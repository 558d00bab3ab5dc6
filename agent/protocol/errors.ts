import { PkeError } from '../core/errors.ts';
import { API_ERROR_CODES, type ApiErrorCode } from './api.ts';

/** A failed controller call: says the method, path, status, the server's code, message and field. */
export class ControllerRequestError extends PkeError {
  /** The API error code (`not-initialized`, `fenced`, ...), when the controller answered with one. */
  readonly code: ApiErrorCode | undefined;
  /** The request's key path the controller named as wrong (400), e.g. `pool` or `query.wait`. */
  readonly field: string | undefined;

  constructor(
    method: string,
    path: string,
    status: number | undefined,
    code: ApiErrorCode | undefined,
    message: string,
    options: { field?: string; cause?: unknown } = {},
  ) {
    const what =
      status === undefined ? message : `${status}${code ? ` ${code}` : ''}: ${message}${options.field ? ` (field ${options.field})` : ''}`;
    super(`controller ${method} ${path}: ${what}`, { context: { url: path, status }, cause: options.cause });
    this.code = code;
    this.field = options.field;
  }
}

/** The code as the client knows it; a code from a newer controller is kept as undefined. */
export function knownErrorCode(code: string): ApiErrorCode | undefined {
  return (API_ERROR_CODES as readonly string[]).includes(code) ? (code as ApiErrorCode) : undefined;
}
