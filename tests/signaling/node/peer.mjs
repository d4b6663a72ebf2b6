// A socket.io-client 4.x peer remote-controlled by tests/signaling/clients.py (NodePeer).
// Commands arrive as JSON lines on stdin:
//   {"op": "connect", "url": "...", "transports": ["websocket"], "auth": {...} | null}
//   {"op": "emit", "event": "call", "args": [{...}]}
//   {"op": "emits", "items": [["ice-candidate", {...}], ...]}   (all in one tick: the client batches them)
//   {"op": "disconnect"}            (socket.disconnect())
//   {"op": "exit"}
// Everything the socket sees leaves as JSON lines on stdout:
//   {"type": "connect", "transport": "polling"} · {"type": "upgrade", "transport": "websocket"}
//   {"type": "connect_error", "message": "...", "data": ...} · {"type": "disconnect", "reason": "..."}
//   {"type": "event", "event": "incoming-call", "args": [{...}]}
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

let socket = null;
const say = (message) => process.stdout.write(JSON.stringify(message) + "\n");

function connect({ url, transports, auth }) {
  socket = io(url, {
    transports,
    auth: auth ?? undefined,
    reconnection: false,
    forceNew: true,
    timeout: 5000,
  });
  socket.io.on("open", () => {
    socket.io.engine.on("upgrade", (transport) => say({ type: "upgrade", transport: transport.name }));
  });
  socket.on("connect", () => say({ type: "connect", transport: socket.io.engine.transport.name }));
  socket.on("connect_error", (err) => say({ type: "connect_error", message: err.message, data: err.data ?? null }));
  socket.on("disconnect", (reason) => say({ type: "disconnect", reason }));
  socket.onAny((event, ...args) => say({ type: "event", event, args }));
}

const commands = {
  connect,
  emit: ({ event, args }) => socket.emit(event, ...args),
  emits: ({ items }) => items.forEach(([event, ...args]) => socket.emit(event, ...args)),
  disconnect: () => socket.disconnect(),
  exit: () => {
    if (socket) socket.disconnect();
    // Let the goodbye packet leave before the process ends.
    setTimeout(() => process.exit(0), 50);
  },
};

createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  commands[command.op](command);
}).on("close", () => commands.exit());
