/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/** The page's entry point: `deno task build` bundles it into web/dist/app.js. */

import { render } from "preact";
import { App, browserNameStore } from "./app.tsx";
import { createGrpcChatApi } from "./grpc_chat_api.ts";

const root = document.getElementById("app");
if (root) {
  root.textContent = "";
  render(<App api={createGrpcChatApi(location.origin)} names={browserNameStore()} />, root);
}
