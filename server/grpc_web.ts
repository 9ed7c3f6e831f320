/**
 * The browser API's former entry point, kept only while server/gateway.ts imports it by this
 * name: the API is server/web_api.ts (gRPC-Web and Connect, served by @connectrpc/connect).
 */

export { createWebApi as createGrpcWebHandler } from "./web_api.ts";
