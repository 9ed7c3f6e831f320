/**
 * Limits and timings the server and its clients both have to know, in a module without Deno or
 * gRPC so that the terminal client and the browser page can import it. Where the server's value is
 * a setting (core/config.ts), the constant here is its default.
 */

/**
 * The most rooms a stream may resume (`Connect.resume` entries, `MAX_RESUME_ROOMS`): "general",
 * the 100 group rooms and 100 direct rooms of one's own that a user may hold by default, and room
 * for direct rooms that others opened. A client in more rooms resumes the first this many and
 * reads the others' history.
 */
export const DEFAULT_MAX_RESUME_ROOMS = 256;

/** The most people one message mentions (`Message.mentions`); more `@names` stay plain text. */
export const MAX_MENTIONS = 20;

/** The fewest characters a new account's password may have. */
export const PASSWORD_MIN_LENGTH = 8;
/** The most characters a password may have: argon2 hashes all of it, so the cost is capped. */
export const PASSWORD_MAX_LENGTH = 128;

/**
 * The request header by which a gRPC-Web stream asks for keep-alives (`x-chat-keepalive: 1`):
 * gRPC-Web has no keep-alive frame of its own, so the gateway sends an empty `chat.Message`
 * after this much silence on a stream that asked, and the client drops it.
 */
export const KEEPALIVE_HEADER = "x-chat-keepalive";
/** The silence after which the gateway sends a keep-alive on a stream that asked for one. */
export const KEEPALIVE_INTERVAL_MS = 15_000;
