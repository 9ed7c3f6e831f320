/**
 * Search in the chat service: a user looks for words in the history of the rooms they are in (or
 * of one of them). The store's full-text index does the finding; this module decides which rooms
 * a caller may search, checks the request, and keeps searching, which reads far more than a
 * send, under its own per-user rate.
 */

import type { Config } from "../core/config.ts";
import { invalidArgument } from "../core/errors.ts";
import type { ChatMessage } from "../core/types.ts";
import { DEFAULT_ROOM } from "../protocol/names.ts";
import { SEARCH_QUERY_MAX, searchWords } from "../protocol/search.ts";
import type { Store } from "../store/store.ts";
import type { Callers } from "./chat_callers.ts";
import { LookupRate } from "./chat_checks.ts";
import type { Rooms } from "./chat_rooms.ts";
import type { Caller } from "./chat_types.ts";

export interface SearchRequest {
  readonly query: string;
  /** Empty: every room of the caller. */
  readonly room: string;
  /** 0: the default. */
  readonly limit: number;
}

/** Results when the request asks for none in particular, and the most it may ask for. */
const SEARCH_DEFAULT = 20;
const SEARCH_MAX = 50;

export interface SearchOptions {
  store: Pick<Store, "roomsOf" | "search">;
  callers: Callers;
  rooms: Rooms;
  config: Pick<Config, "searchRatePerSecond" | "searchBurst">;
}

export class Search {
  readonly #options: SearchOptions;
  readonly #rate: LookupRate;

  constructor(options: SearchOptions) {
    this.#options = options;
    this.#rate = new LookupRate(options.config, "searches");
  }

  /** The caller's messages matching `request.query`, best first. */
  async search(caller: Caller, request: SearchRequest): Promise<ChatMessage[]> {
    const { store, callers, rooms } = this.#options;
    const action = "Cannot search";
    const me = await callers.identify(caller, undefined, action);
    const query = request.query.trim();
    const length = [...query].length;
    if (length === 0) throw invalidArgument(`${action}: the query is empty`);
    if (length > SEARCH_QUERY_MAX) {
      throw invalidArgument(
        `${action}: the query is ${length} characters, the limit is ${SEARCH_QUERY_MAX}`,
      );
    }
    if (searchWords(query).length === 0) {
      throw invalidArgument(`${action}: the query has no letters or digits to look for`);
    }
    if (request.limit > SEARCH_MAX) {
      throw invalidArgument(`${action}: limit is ${request.limit}, the most is ${SEARCH_MAX}`);
    }
    this.#rate.take(action, me.userId);
    // After the limit: a refused search reads nothing more.
    const room = request.room.trim()
      ? await rooms.memberRoom(action, request.room, me.userId)
      : undefined;
    const searched = room !== undefined
      ? [room]
      : [DEFAULT_ROOM, ...(await store.roomsOf(me.userId)).map((r) => r.id)];
    return await store.search(
      [...new Set(searched)],
      query,
      request.limit || SEARCH_DEFAULT,
      me.userId,
    );
  }
}
