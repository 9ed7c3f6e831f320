/**
 * The connection limits of one listening port, enforced on the TCP sockets themselves, under
 * whatever speaks HTTP on them (node:http, node:http2, grpc-js): the guard accepts every
 * connection on its own `net.Server`, counts it, and hands it over (`emit("connection")` or a
 * grpc-js connection injector). The protocol layer tells it when a call starts, when the call's
 * request has fully arrived and when the call ends; the guard keeps one deadline per phase:
 *
 * - a new connection must deliver its first request's headers (TLS handshake and HTTP/2 preface
 *   included) within `headersTimeoutMs`;
 * - a request must deliver its body within `bodyTimeoutMs` of its headers;
 * - a connection with no call open is closed after `idleTimeoutMs`.
 *
 * A connection that breaks one is destroyed without a word to the log; what was closed is summed
 * up in one line every `reportIntervalMs` ("Closed 1000 HTTP connections that broke the limits in
 * the last 10 s: 600 idle, 400 slow headers").
 *
 * Caps: `maxConnections` on the port and `maxConnectionsPerAddress` per client address. At a cap
 * a new connection takes the place of the oldest connection (of the port, or of that address)
 * that has no call being served, that is one that is still in its handshake, headers or body, or
 * idle, so connections that do nothing cannot keep working clients out; when every connection
 * serves a call, the new one is refused. `maxCallsPerAddress` bounds the calls one address has
 * open at once (the protocol layer answers the refused call RESOURCE_EXHAUSTED).
 *
 * A call is matched to its connection by the peer's address and port, as every layer reports
 * them (`"127.0.0.1:5678"`, as grpc-js's `getPeer()` has it).
 */

import net from "node:net";
import type { Logger } from "../core/logger.ts";

export interface ConnectionLimits {
  maxConnections: number;
  maxConnectionsPerAddress: number;
  maxCallsPerAddress: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  idleTimeoutMs: number;
}

/** Why the guard closed or refused a connection, as the summary line says it. */
export type CloseReason =
  | "idle"
  | "slow headers"
  | "slow body"
  | "replaced at the connection cap"
  | "refused at the connection cap"
  | "replaced at the per-address cap"
  | "refused at the per-address cap";

export interface GuardOptions {
  /** The port's name in the summary line: "HTTP", "gRPC". */
  name: string;
  limits: ConnectionLimits;
  logger: Logger;
  reportIntervalMs: number;
  /**
   * Who closes a connection that went idle. "guard": the guard, at `idleTimeoutMs`, through the
   * graceful closer the protocol registered for it (an HTTP/2 GOAWAY), or by destroying it.
   * "protocol": the protocol layer does (grpc-js's `grpc.max_connection_idle_ms` sends a
   * GOAWAY), the guard only destroys what is still open `IDLE_BACKSTOP_MS` later, and counts a
   * connection that closes after `idleTimeoutMs` with no call as closed idle.
   */
  idleCloser: "guard" | "protocol";
}

/** A call's hold on its connection: `requestDone()` once its request has arrived, `end()` once it ended. */
export interface CallTicket {
  /** Set when the call is over `maxCallsPerAddress`: the message to refuse it with. */
  readonly refused?: string;
  requestDone(): void;
  end(): void;
}

export interface GuardStats {
  /** Connections open now. */
  open: number;
  /** Calls open now. */
  calls: number;
  /** Connections closed or refused since the start, by reason. */
  closed: Partial<Record<CloseReason, number>>;
  /** Calls refused over `maxCallsPerAddress` since the start. */
  refusedCalls: number;
  /** Calls whose connection was not found (the protocol reported a peer the guard never saw). */
  unmatchedCalls: number;
}

/** How long after `idleTimeoutMs` the guard destroys an idle connection the protocol should have closed. */
const IDLE_BACKSTOP_MS = 2000;
/** How long a graceful close (GOAWAY) may take before the connection is destroyed. */
const GRACEFUL_CLOSE_MS = 1000;

interface Connection {
  readonly socket: net.Socket;
  readonly key: string;
  readonly address: AddressState;
  readonly opened: number;
  readonly calls: Set<Call>;
  /** Calls whose request has arrived and that have not ended: the connection is serving. */
  serving: number;
  hadCall: boolean;
  idleSince: number;
  /** `socket.bytesRead` when the connection went idle: more since means a request is trickling in. */
  bytesAtIdle: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  closing: CloseReason | undefined;
  graceful: (() => void) | undefined;
}

interface Call {
  readonly connection: Connection;
  timer: ReturnType<typeof setTimeout> | undefined;
  requestDone: boolean;
  ended: boolean;
}

interface AddressState {
  readonly key: string;
  connections: number;
  calls: number;
  /** Its connections that serve no call, oldest first. */
  readonly unproductive: Set<Connection>;
}

/** `host:port` as grpc-js's `getPeer()` writes it, for matching a call to its connection. */
export function peerKey(host: string | undefined, port: number | undefined): string {
  return `${host ?? ""}:${port ?? 0}`;
}

/**
 * The client address a connection counts against: an IPv4 address as it is (also when mapped
 * into IPv6), an IPv6 address by its /64 network (one subscriber usually holds a whole /64).
 */
export function clientAddress(host: string | undefined): string {
  if (!host) return "unknown";
  const bare = host.replace(/^\[|\]$/g, "").replace(/%.*$/, "").toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
  if (mapped) return mapped[1]!;
  if (!bare.includes(":")) return bare;
  const halves = bare.split("::");
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length > 1 && halves[1] ? halves[1].split(":") : [];
  const groups = [...head, ...Array(Math.max(0, 8 - head.length - tail.length)).fill("0"), ...tail];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}

function first<T>(set: Set<T>): T | undefined {
  for (const item of set) return item;
  return undefined;
}

export class ConnectionGuard {
  readonly #options: GuardOptions;
  readonly #limits: ConnectionLimits;
  readonly #byKey = new Map<string, Connection>();
  readonly #addresses = new Map<string, AddressState>();
  /** Connections that serve no call, oldest first: the ones a new connection may replace at a cap. */
  readonly #unproductive = new Set<Connection>();
  #open = 0;
  #calls = 0;
  readonly #closed: Partial<Record<CloseReason, number>> = {};
  #refusedCalls = 0;
  #unmatchedCalls = 0;
  /** Since the last summary line. */
  #window: Partial<Record<CloseReason, number>> = {};
  #windowRefusedCalls = 0;
  #windowStart = Date.now();
  #report: ReturnType<typeof setInterval> | undefined;
  #server: net.Server | undefined;

  constructor(options: GuardOptions) {
    this.#options = options;
    this.#limits = options.limits;
  }

  /**
   * Listens on `host:port` and hands every connection within the caps to `handOver`. Resolves
   * with the bound port.
   */
  listen(host: string, port: number, handOver: (socket: net.Socket) => void): Promise<number> {
    const server = net.createServer({ noDelay: true }, (socket) => {
      if (this.admit(socket)) handOver(socket);
    });
    this.#server = server;
    const report = setInterval(() => this.report(), this.#options.reportIntervalMs);
    Deno.unrefTimer(report);
    this.#report = report;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port }, () => {
        server.off("error", reject);
        // A failed accept (too many open files) must not take the process down.
        server.on("error", (err) => {
          this.#options.logger.warn("Cannot accept a connection", {
            port: this.#options.name,
            error: err.message,
          });
        });
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  /**
   * Counts `socket` in, within the caps (replacing an unproductive connection at a cap), and
   * starts its headers deadline. False when it was refused (and destroyed).
   */
  admit(socket: net.Socket): boolean {
    // A reset connection must not become an uncaught error; the protocol layer sees it too.
    socket.on("error", () => {});
    if (!socket.remoteAddress) {
      // Gone before it was accepted.
      socket.destroy();
      return false;
    }
    const address = this.#address(clientAddress(socket.remoteAddress));
    if (address.connections >= this.#limits.maxConnectionsPerAddress) {
      const victim = first(address.unproductive);
      if (!victim) return this.#refuse(socket, address, "refused at the per-address cap");
      this.#close(victim, "replaced at the per-address cap");
    }
    if (this.#open >= this.#limits.maxConnections) {
      const victim = first(this.#unproductive);
      if (!victim) return this.#refuse(socket, address, "refused at the connection cap");
      this.#close(victim, "replaced at the connection cap");
    }
    socket.setNoDelay(true);
    const connection: Connection = {
      socket,
      key: peerKey(socket.remoteAddress, socket.remotePort),
      address,
      opened: Date.now(),
      calls: new Set(),
      serving: 0,
      hadCall: false,
      idleSince: Date.now(),
      bytesAtIdle: 0,
      timer: undefined,
      closing: undefined,
      graceful: undefined,
    };
    this.#byKey.set(connection.key, connection);
    address.connections++;
    address.unproductive.add(connection);
    this.#unproductive.add(connection);
    this.#open++;
    socket.once("close", () => this.#closedByPeerOrProtocol(connection));
    this.#arm(connection);
    return true;
  }

  /**
   * Registers how to close the connection of `peer` gracefully when it goes idle (an HTTP/2
   * session's GOAWAY): the guard calls it instead of destroying the socket.
   */
  setGracefulClose(peer: string, close: () => void): void {
    const connection = this.#byKey.get(peer);
    if (connection) connection.graceful = close;
  }

  /** A call started on the connection of `peer` (its headers arrived). */
  startCall(peer: string): CallTicket {
    const connection = this.#byKey.get(peer);
    if (!connection) {
      this.#unmatchedCalls++;
      this.#options.logger.debug("A call on a connection the guard does not know", { peer });
      return { requestDone() {}, end() {} };
    }
    const { address } = connection;
    if (address.calls >= this.#limits.maxCallsPerAddress) {
      this.#refusedCalls++;
      this.#windowRefusedCalls++;
      return {
        refused: `Cannot start the call: ${address.key} has ${address.calls} calls open on this ` +
          `server, the limit is ${this.#limits.maxCallsPerAddress}`,
        requestDone() {},
        end() {},
      };
    }
    const call: Call = { connection, timer: undefined, requestDone: false, ended: false };
    connection.calls.add(call);
    connection.hadCall = true;
    address.calls++;
    this.#calls++;
    // (A connection being closed gracefully keeps its deadline to be destroyed.)
    if (!connection.closing) this.#clearTimer(connection);
    call.timer = setTimeout(() => this.#close(connection, "slow body"), this.#limits.bodyTimeoutMs);
    return {
      requestDone: () => {
        if (call.ended || call.requestDone) return;
        call.requestDone = true;
        clearTimeout(call.timer);
        // Not kept: a stream's call lives for hours, a spent Timeout and its closure ~200 bytes.
        call.timer = undefined;
        connection.serving++;
        if (connection.serving === 1) {
          this.#unproductive.delete(connection);
          address.unproductive.delete(connection);
        }
      },
      end: () => {
        if (call.ended) return;
        this.#endCall(call);
        if (connection.closing) return;
        if (connection.serving === 0) {
          // Last in the queues: it served until now.
          this.#unproductive.add(connection);
          address.unproductive.add(connection);
        }
        if (connection.calls.size === 0) {
          connection.idleSince = Date.now();
          connection.bytesAtIdle = connection.socket.bytesRead;
          this.#arm(connection);
        }
      },
    };
  }

  stats(): GuardStats {
    return {
      open: this.#open,
      calls: this.#calls,
      closed: { ...this.#closed },
      refusedCalls: this.#refusedCalls,
      unmatchedCalls: this.#unmatchedCalls,
    };
  }

  /** Stops taking connections; the open ones stay. */
  stopListening(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    // (Its callback would wait for every open connection to close.)
    server?.close();
    return Promise.resolve();
  }

  /** Connections open now, with whether they have a call. */
  connections(): { socket: net.Socket; calls: number }[] {
    return [...this.#byKey.values()].map((c) => ({ socket: c.socket, calls: c.calls.size }));
  }

  /** Stops listening, destroys every connection and writes the last summary. */
  async close(): Promise<void> {
    await this.stopListening();
    for (const connection of [...this.#byKey.values()]) {
      this.#forget(connection);
      connection.socket.destroy();
    }
    if (this.#report !== undefined) clearInterval(this.#report);
    this.#report = undefined;
    this.report();
  }

  /** Writes the summary line of what was closed since the last one, if anything was. */
  report(): void {
    const counts = Object.entries(this.#window) as [CloseReason, number][];
    const closed = counts.reduce((n, [, c]) => n + c, 0);
    const refusedCalls = this.#windowRefusedCalls;
    const seconds = Math.max(1, Math.round((Date.now() - this.#windowStart) / 1000));
    this.#window = {};
    this.#windowRefusedCalls = 0;
    this.#windowStart = Date.now();
    if (closed === 0 && refusedCalls === 0) return;
    const { name } = this.#options;
    const parts = counts.sort((a, b) => b[1] - a[1]).map(([reason, n]) => `${n} ${reason}`);
    const calls =
      `${refusedCalls} calls over the limit of ${this.#limits.maxCallsPerAddress} per address`;
    this.#options.logger.warn(
      closed === 0
        ? `Refused ${calls} on the ${name} port in the last ${seconds} s`
        : `Closed ${closed} ${name} connections that broke the limits in the last ${seconds} s: ${
          parts.join(", ")
        }${refusedCalls > 0 ? `; refused ${calls}` : ""}`,
    );
  }

  #address(key: string): AddressState {
    let state = this.#addresses.get(key);
    if (!state) {
      state = { key, connections: 0, calls: 0, unproductive: new Set() };
      this.#addresses.set(key, state);
    }
    return state;
  }

  #refuse(socket: net.Socket, address: AddressState, reason: CloseReason): false {
    this.#count(reason);
    socket.destroy();
    if (address.connections === 0 && address.calls === 0) this.#addresses.delete(address.key);
    return false;
  }

  #count(reason: CloseReason): void {
    this.#closed[reason] = (this.#closed[reason] ?? 0) + 1;
    this.#window[reason] = (this.#window[reason] ?? 0) + 1;
  }

  /** Sets the connection's deadline for the phase it is in: before its first call, or idle. */
  #arm(connection: Connection): void {
    this.#clearTimer(connection);
    if (connection.calls.size > 0 || connection.closing) return;
    const { headersTimeoutMs, idleTimeoutMs } = this.#limits;
    if (!connection.hadCall) {
      connection.timer = setTimeout(() => {
        this.#close(connection, connection.socket.bytesRead === 0 ? "idle" : "slow headers");
      }, Math.max(0, connection.opened + headersTimeoutMs - Date.now()));
      return;
    }
    const backstop = this.#options.idleCloser === "protocol" ? IDLE_BACKSTOP_MS : 0;
    connection.timer = setTimeout(() => {
      const reason = connection.socket.bytesRead > connection.bytesAtIdle ? "slow headers" : "idle";
      const graceful = connection.graceful;
      if (reason === "idle" && graceful && backstop === 0) {
        // A GOAWAY, so a client does not send a call on a connection that is going; destroyed if
        // it is still there a moment later.
        this.#count(reason);
        connection.closing = reason;
        this.#release(connection);
        try {
          graceful();
        } catch {
          // Already closing.
        }
        connection.timer = setTimeout(() => {
          this.#forget(connection);
          connection.socket.destroy();
        }, GRACEFUL_CLOSE_MS);
        return;
      }
      this.#close(connection, reason);
    }, idleTimeoutMs + backstop);
  }

  #clearTimer(connection: Connection): void {
    if (connection.timer !== undefined) clearTimeout(connection.timer);
    connection.timer = undefined;
  }

  #endCall(call: Call): void {
    call.ended = true;
    clearTimeout(call.timer);
    const { connection } = call;
    connection.calls.delete(call);
    connection.address.calls--;
    this.#calls--;
    if (call.requestDone) connection.serving--;
  }

  #close(connection: Connection, reason: CloseReason): void {
    if (connection.closing) return;
    connection.closing = reason;
    this.#count(reason);
    this.#forget(connection);
    connection.socket.destroy();
  }

  /** The socket closed: by its client, or by the protocol layer (grpc-js closing it idle). */
  #closedByPeerOrProtocol(connection: Connection): void {
    if (!this.#byKey.has(connection.key) || this.#byKey.get(connection.key) !== connection) return;
    if (
      !connection.closing && this.#options.idleCloser === "protocol" && connection.hadCall &&
      connection.calls.size === 0 &&
      Date.now() - connection.idleSince >= this.#limits.idleTimeoutMs - 50
    ) {
      this.#count("idle");
    }
    this.#forget(connection);
  }

  /** Takes the connection out of the counts that admit new ones (it is on its way out). */
  #release(connection: Connection): void {
    this.#unproductive.delete(connection);
    connection.address.unproductive.delete(connection);
  }

  #forget(connection: Connection): void {
    if (this.#byKey.get(connection.key) !== connection) return;
    this.#byKey.delete(connection.key);
    this.#clearTimer(connection);
    this.#release(connection);
    for (const call of [...connection.calls]) this.#endCall(call);
    const { address } = connection;
    address.connections--;
    if (address.connections === 0 && address.calls === 0) this.#addresses.delete(address.key);
    this.#open--;
  }
}
