/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/** The page's entry point: `deno task build` bundles it into web/dist/app.js. */

import { render } from "preact";
import { App, browserSessionStore } from "./app.tsx";
import { createGrpcBackend } from "./grpc_chat_api.ts";

const root = document.getElementById("app");
if (root) {
  root.textContent = "";
  render(<App backend={createGrpcBackend(location.origin)} store={browserSessionStore()} />, root);
}
