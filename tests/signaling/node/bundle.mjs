// Loads /socket.io/socket.io.js from a running server the way a browser would (a global scope with `self`)
// and reports what it exposes. With "connect", the bundle's own `io` also connects over WebSocket (the `ws`
// package standing in for the browser's WebSocket) and registers. Prints one JSON line.
//   node bundle.mjs <server base url> [connect]
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import vm from "node:vm";

const [, , base, mode] = process.argv;
const require = createRequire(import.meta.url);
const response = await fetch(`${base}/socket.io/socket.io.js`);
const text = await response.text();
const npmPackage = new URL("./node_modules/socket.io-client/", import.meta.url);
const npmBundle = await readFile(new URL("dist/socket.io.min.js", npmPackage), "utf8");
const npmVersion = JSON.parse(await readFile(new URL("package.json", npmPackage), "utf8")).version;

const scope = { setTimeout, clearTimeout, setInterval, clearInterval, console, WebSocket: require("ws") };
scope.self = scope;
scope.window = scope;
vm.createContext(scope);
vm.runInContext(text, scope, { filename: "socket.io.js" });
const io = scope.io;

const report = {
  status: response.status,
  contentType: response.headers.get("content-type"),
  header: text.slice(0, 120),
  identicalToNpm: text === npmBundle,
  npmVersion,
  typeofIo: typeof io,
  typeofManager: typeof io?.Manager,
  typeofSocket: typeof io?.Socket,
  registered: null,
};

if (mode === "connect" && typeof io === "function") {
  report.registered = await new Promise((resolve) => {
    const socket = io(base, { transports: ["websocket"], reconnection: false, forceNew: true });
    const done = (value) => { socket.disconnect(); resolve(value); };
    setTimeout(() => done({ error: "timeout" }), 5000);
    socket.on("connect_error", (err) => done({ error: err.message }));
    socket.on("connect", () => socket.emit("register", { displayName: " Bundle " }));
    socket.on("registered", (payload) => done(payload));
  });
}
say(report);
setTimeout(() => process.exit(0), 50);

function say(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}
