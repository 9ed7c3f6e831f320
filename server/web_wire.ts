/**
 * The bytes of the browser API that @connectrpc/connect leaves to us (server/web_api.ts uses them
 * around Connect): gRPC-Web text mode, which Connect does not serve; request envelopes checked
 * before Connect parses them, since Connect answers bytes that do not decode with INTERNAL;
 * `grpc-message` encoded as gRPC specifies; bounded body reads; and what a plain unary call
 * answered without Connect needs.
 */

import { concat } from "./bytes.ts";

export const TEXT_CONTENT_TYPE = /^application\/grpc-web-text(\+proto)?$/i;
export const GRPC_WEB_CONTENT_TYPE = /^application\/grpc-web/i;
/** gRPC-Web with protobuf in binary, the content type without parameters. */
export const BINARY_GRPC_WEB_CONTENT_TYPE = /^application\/grpc-web(\+proto)?$/i;
/** Streaming protocols whose messages are protobuf in envelopes (base64 in gRPC-Web text). */
export const BINARY_STREAM_CONTENT_TYPE =
  /^application\/(grpc-web(-text)?(\+proto)?|connect\+proto)$/i;
export const TRAILER_FLAG = 0x80;
/** Protocols whose requests come in envelopes (a flags byte, a length, the message). */
export const ENVELOPED_CONTENT_TYPE = /^application\/(grpc-web|connect\+)/i;
export const COMPRESSED_FLAG = 0x01;

const encoder = new TextEncoder();

/** The trailers frame of a gRPC-Web call that succeeded, as Connect writes it. */
export const GRPC_WEB_OK_TRAILERS = envelope(encoder.encode("grpc-status: 0\r\n"), TRAILER_FLAG);

/**
 * Whether a call needs nothing of Connect but its answer's framing: a POST in binary gRPC-Web
 * (`contentType`, as sent, without parameters) whose `body` is one uncompressed message,
 * `payload`, with no deadline to keep and no compression declared.
 */
export function isPlainGrpcWebCall(
  method: string,
  contentType: string,
  header: Headers,
  body: Uint8Array,
  payload: Uint8Array,
): boolean {
  return method === "POST" && BINARY_GRPC_WEB_CONTENT_TYPE.test(contentType) &&
    body[0] === 0 && body.length === payload.length + 5 && !header.has("grpc-timeout") &&
    (header.get("grpc-encoding") ?? "identity") === "identity";
}

/**
 * An envelope (gRPC-Web and Connect frame): `flags`, the payload's length (4 bytes, big-endian),
 * the payload.
 */
export function envelope(payload: Uint8Array, flags = 0): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

/** A content type without its parameters, in lower case. */
export function mediaType(contentType: string | null): string {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase();
}

/** The content type of a stream's response to a request of `contentType`, as Connect answers. */
export function streamContentType(contentType: string | null): string {
  const base = mediaType(contentType);
  return BINARY_GRPC_WEB_CONTENT_TYPE.test(base) ? "application/grpc-web+proto" : base;
}

/**
 * A gRPC-Web trailers frame (Connect writes every response frame as one chunk) with its
 * `grpc-message` percent-encoded as gRPC specifies, only bytes outside 0x20-0x7E and "%":
 * Connect encodes every space and colon, and @protobuf-ts/grpcweb-transport decodes nothing.
 */
export function plainTrailers(frame: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(frame.subarray(5));
  const fixed = text.replace(/^(grpc-message:\s*)(.*)$/im, (_, name: string, value: string) => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(value);
    } catch {
      return `${name}${value}`;
    }
    let out = "";
    for (const byte of encoder.encode(decoded)) {
      out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
    }
    return `${name}${out}`;
  });
  return envelope(encoder.encode(fixed), frame[0]);
}

/**
 * The one binary message of a request body of `contentType`: the whole body of a Connect unary
 * call, or the payload of an enveloped call's first uncompressed envelope (Connect parses it
 * before it sees what follows); undefined for JSON and for framing that Connect itself refuses.
 */
export function binaryPayload(
  contentType: string | null,
  body: Uint8Array,
): Uint8Array | undefined {
  const type = mediaType(contentType);
  if (type === "application/proto") return body;
  if (!/^application\/(grpc-web(\+proto)?|connect\+proto)$/.test(type)) return undefined;
  if (body.length < 5 || body[0] !== 0) return undefined;
  const length = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(1);
  return length <= body.length - 5 ? body.subarray(5, 5 + length) : undefined;
}

/** The request's body, or its first `limit` bytes: the rest is not read. */
export async function readAtMost(request: Request, limit: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = request.body?.getReader();
  while (reader && total < limit) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.length;
  }
  if (total >= limit) await reader?.cancel().catch(() => {});
  return concat(chunks);
}

/** A response frame in text mode: its own padded base64 chunk. */
export function encodeBase64Chunk(frame: Uint8Array): Uint8Array<ArrayBuffer> {
  return encoder.encode(frame.toBase64());
}

/** Decodes a text-mode body: one or more base64 chunks, each possibly padded. */
export function decodeBase64Body(body: Uint8Array): Uint8Array<ArrayBuffer> | undefined {
  const chunks: Uint8Array[] = [];
  for (const chunk of new TextDecoder().decode(body).split(/(?<==)(?=[^=])/)) {
    try {
      chunks.push(Uint8Array.fromBase64(chunk));
    } catch {
      return undefined;
    }
  }
  return concat(chunks);
}
