/**
 * Domain errors and their one mapping to gRPC status codes, which Connect shares.
 *
 * Messages follow "Action: state" ("Cannot send message: content is 70000
 * bytes, the limit is 65536") so a user can act on them.
 */

import { Code, ConnectError } from "@connectrpc/connect";
import { status } from "@grpc/grpc-js";

export type ErrorCode =
  | "invalid_argument"
  | "unavailable"
  | "not_found"
  | "permission_denied"
  | "unauthenticated"
  | "resource_exhausted"
  | "already_exists"
  | "failed_precondition"
  | "cancelled"
  | "internal";

export class ChatError extends Error {
  constructor(readonly code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ChatError";
  }
  /** Whether a retry of the same call may succeed. */
  get temporary(): boolean {
    return this.code === "unavailable" || this.code === "resource_exhausted";
  }
}

export const invalidArgument = (message: string) => new ChatError("invalid_argument", message);
export const unavailable = (message: string, cause?: unknown) =>
  new ChatError("unavailable", message, { cause });

const GRPC_CODES: Record<ErrorCode, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  unavailable: status.UNAVAILABLE,
  not_found: status.NOT_FOUND,
  permission_denied: status.PERMISSION_DENIED,
  unauthenticated: status.UNAUTHENTICATED,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  already_exists: status.ALREADY_EXISTS,
  failed_precondition: status.FAILED_PRECONDITION,
  cancelled: status.CANCELLED,
  internal: status.INTERNAL,
};

/** The gRPC status and message for any thrown value; unknown errors become INTERNAL. */
export function toGrpcStatus(err: unknown): { code: status; details: string } {
  if (err instanceof ChatError) return { code: GRPC_CODES[err.code], details: err.message };
  return { code: status.INTERNAL, details: "Internal error: the server failed unexpectedly" };
}

/**
 * The same status as a `ConnectError`, for the browser API: Connect's codes are gRPC's numbers,
 * and its message goes on the wire as `details` would.
 */
export function toConnectError(err: unknown): ConnectError {
  const { code, details } = toGrpcStatus(err);
  return new ConnectError(details, code as number as Code);
}

/** A readable one-line description of any thrown value, for logs. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
