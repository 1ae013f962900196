// @opensports/client: a subscriber for OpenSports Edge (WebSocket, PROTOCOL.md §2) with typed
// messages generated from the server's JSON Schema.
export * from './messages.js';
export { Subscriber } from './subscriber.js';
