import type { ApiErrorCode } from '../../protocol/api.ts';

/** An answer other than 2xx, thrown by handlers and turned into an apiErrorSchema body by the server. */
export class ApiProblem extends Error {
  readonly status: number;
  readonly code: ApiErrorCode;
  readonly field: string | undefined;

  constructor(status: number, code: ApiErrorCode, message: string, field?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export const forbidden = (message: string) => new ApiProblem(403, 'forbidden', message);
export const notFound = (message: string) => new ApiProblem(404, 'not-found', message);
export const conflict = (message: string) => new ApiProblem(409, 'conflict', message);
export const badRequest = (message: string, field?: string) => new ApiProblem(400, 'bad-request', message, field);
