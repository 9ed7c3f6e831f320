/**
 * The chat service as the metrics see it: each transport gets the service wrapped once, so that
 * sends accepted and refused, sign-in outcomes and open streams are counted in one place for both
 * transports, with the transport known, and none of the chat modules reaches for metrics.
 */

import { ChatError } from "../core/errors.ts";
import type { Metrics, Transport } from "../core/metrics.ts";
import type { ChatService } from "./chat_service.ts";

/** The gRPC status name (lower case) a refusal is counted under. */
function codeOf(err: unknown): string {
  return err instanceof ChatError ? err.code : "internal";
}

/** `service` counting into `metrics` what clients of `transport` do; `service` itself when off. */
export function countedChat(
  service: ChatService,
  metrics: Metrics,
  transport: Transport,
): ChatService {
  if (!metrics.enabled) return service;
  return {
    ...service,
    async send(caller, request) {
      try {
        const sent = await service.send(caller, request);
        metrics.sendAccepted();
        return sent;
      } catch (err) {
        metrics.sendRefused(codeOf(err));
        throw err;
      }
    },
    async signIn(username, password, displayName, caller) {
      try {
        const result = await service.signIn(username, password, displayName, caller);
        metrics.signIn(result.created ? "created" : "signed_in");
        return result;
      } catch (err) {
        metrics.signIn(codeOf(err));
        throw err;
      }
    },
    async openStream(caller, request, sink) {
      const handle = await service.openStream(caller, request, sink);
      metrics.streamOpened(transport);
      let open = true;
      return {
        ...handle,
        close() {
          if (open) metrics.streamClosed(transport);
          open = false;
          handle.close();
        },
      };
    },
  };
}
