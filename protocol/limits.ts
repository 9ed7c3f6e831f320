/**
 * Defaults of the limits a client has to stay within, in a module without Deno or gRPC so that the
 * terminal client and the browser page can import it. The server's values are settings
 * (core/config.ts); these are their defaults.
 */

/**
 * The most rooms a stream may resume (`Connect.resume` entries, `MAX_RESUME_ROOMS`): "general",
 * the 100 group rooms and 100 direct rooms of one's own that a user may hold by default, and room
 * for direct rooms that others opened. A client in more rooms resumes the first this many and
 * reads the others' history.
 */
export const DEFAULT_MAX_RESUME_ROOMS = 256;
