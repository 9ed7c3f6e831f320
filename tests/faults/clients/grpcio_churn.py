"""Connection churn as an ordinary Python grpcio application makes it.

Every round makes a new channel (its own HTTP/2 connection: a local subchannel pool, so
grpcio's process-wide pool does not hand back an earlier round's connection), does one thing on
it and closes the channel. The other clients in this folder are Node's grpc-js and hand-written
frames; grpcio is gRPC's C core, a third HTTP/2 stack with its own idea of how to end a
connection. No stubs are generated: requests are hand-encoded protobuf bytes, responses are
taken as bytes.

    python3 tests/faults/clients/grpcio_churn.py <host:port> <rounds> <concurrency> \
        <unary|stream|mixed> [user-prefix]

- unary: ListOnline with an empty OnlineRequest.
- stream: CreateStream with Connect{user: User{id}, active: true}; waits for the response
  headers (the gateway sends them once the stream is registered), calls ListOnline on the same
  channel while the stream is open, then cancels the stream.
- mixed: even rounds unary, odd rounds stream.

Prints `churned {"rounds":..,"ok":..,"failed":..,"errors":{..}}` and exits 0; a round whose call
fails is counted, not fatal (the scenario decides what is acceptable).
"""

import json
import sys
import threading

import grpc

DEADLINE_S = 10.0


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2); lengths here stay under 128 bytes."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def connect_message(user_id: str) -> bytes:
    """chat.Connect{user: User{id: user_id}, active: true}."""
    user = field(1, user_id.encode())
    return field(1, user) + bytes([2 << 3 | 0, 1])


def identity(data: bytes) -> bytes:
    return data


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok = 0
        self.failed = 0
        self.errors: dict[str, int] = {}

    def success(self) -> None:
        with self.lock:
            self.ok += 1

    def fail(self, why: str) -> None:
        with self.lock:
            self.failed += 1
            self.errors[why] = self.errors.get(why, 0) + 1


def accepted(error: grpc.RpcError) -> bool:
    # With AUTH=on an anonymous call is refused, which still exercises the connection.
    return error.code() == grpc.StatusCode.UNAUTHENTICATED


def unary(channel: grpc.Channel, tally: Tally) -> None:
    list_online = channel.unary_unary(
        "/chat.Broadcast/ListOnline",
        request_serializer=identity,
        response_deserializer=identity,
    )
    try:
        list_online(b"", timeout=DEADLINE_S)
        tally.success()
    except grpc.RpcError as error:
        if accepted(error):
            tally.success()
        else:
            tally.fail(f"ListOnline {error.code().name}")


def stream(channel: grpc.Channel, user_id: str, tally: Tally) -> None:
    create_stream = channel.unary_stream(
        "/chat.Broadcast/CreateStream",
        request_serializer=identity,
        response_deserializer=identity,
    )
    list_online = channel.unary_unary(
        "/chat.Broadcast/ListOnline",
        request_serializer=identity,
        response_deserializer=identity,
    )
    call = create_stream(connect_message(user_id), timeout=60.0)
    try:
        # Blocks until the response headers came (or the call ended).
        call.initial_metadata()
        if call.done() and call.code() != grpc.StatusCode.OK:
            if call.code() == grpc.StatusCode.UNAUTHENTICATED:
                tally.success()
            else:
                tally.fail(f"CreateStream {call.code().name}")
            return
        list_online(b"", timeout=DEADLINE_S)
        tally.success()
    except grpc.RpcError as error:
        if accepted(error):
            tally.success()
        else:
            tally.fail(f"CreateStream {error.code().name}")
    finally:
        call.cancel()


def main() -> None:
    if len(sys.argv) < 2:
        print(
            "usage: grpcio_churn.py <host:port> <rounds> <concurrency> <unary|stream|mixed> [user-prefix]",
            file=sys.stderr,
        )
        sys.exit(2)
    server = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    concurrency = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    mode = sys.argv[4] if len(sys.argv) > 4 else "mixed"
    prefix = sys.argv[5] if len(sys.argv) > 5 else "churn-py"
    tally = Tally()
    counter = iter(range(rounds))
    counter_lock = threading.Lock()

    def worker() -> None:
        while True:
            with counter_lock:
                i = next(counter, None)
            if i is None:
                return
            channel = grpc.insecure_channel(server, options=[("grpc.use_local_subchannel_pool", 1)])
            try:
                kind = ("unary" if i % 2 == 0 else "stream") if mode == "mixed" else mode
                if kind == "unary":
                    unary(channel, tally)
                else:
                    stream(channel, f"{prefix}-{i}", tally)
            except Exception as error:  # a round must never stop the worker
                tally.fail(type(error).__name__)
            finally:
                channel.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = {"rounds": rounds, "ok": tally.ok, "failed": tally.failed, "errors": tally.errors}
    print(f"churned {json.dumps(result, separators=(',', ':'))}", flush=True)


if __name__ == "__main__":
    main()
