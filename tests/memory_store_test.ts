/** The store contract over the in-memory adapter. */

import { MemoryStore } from "../store/memory_store.ts";
import { storeContract } from "./store_contract.ts";

// One MemoryStore is one database: every "open" hands out the same instance (its close() keeps
// the data), which is what the contract asks of `open`.
const database = new MemoryStore();
storeContract("memory store", () => Promise.resolve(database));
