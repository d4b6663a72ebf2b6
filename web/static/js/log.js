// The client logger: console + a buffer shipped to POST /api/client-log every 10 s and on page hide (sendBeacon).

const ENDPOINT = '/api/client-log';
const FLUSH_EVERY_MS = 10_000;
const MAX_PER_REQUEST = 200; // the server refuses more in one request
const MAX_LINE = 2000;
const MAX_BUFFER = 1000; // oldest lines are dropped beyond this (e.g. while offline)
const MAX_BATCH_BYTES = 48_000;

const buffer = [];
let dropped = 0;
let sending = false;

function format(level, tag, parts) {
  const text = parts.map((part) => {
    if (part instanceof Error) return `${part.name}: ${part.message}`;
    if (typeof part === 'object') {
      try {
        return JSON.stringify(part);
      } catch {
        return String(part);
      }
    }
    return String(part);
  }).join(' ');
  return `[${new Date().toISOString()}] [${level}] [${tag}] ${text}`.slice(0, MAX_LINE);
}

function write(level, tag, parts) {
  const line = format(level, tag, parts);
  const sink = level === 'ERROR' ? console.error : level === 'WARN' ? console.warn : console.log;
  sink(line);
  if (level === 'DEBUG') return;
  buffer.push(line);
  if (buffer.length > MAX_BUFFER) {
    dropped += buffer.length - MAX_BUFFER;
    buffer.splice(0, buffer.length - MAX_BUFFER);
  }
}

function takeBatch() {
  if (dropped) {
    buffer.unshift(format('WARN', 'log', [`${dropped} log lines dropped while the server was unreachable`]));
    dropped = 0;
  }
  // At most 200 lines and ~48 KB of JSON: the server takes 64 KiB bodies, keepalive fetches and beacons 64 KB.
  let size = 16;
  let count = 0;
  while (count < buffer.length && count < MAX_PER_REQUEST) {
    size += JSON.stringify(buffer[count]).length * 2 + 1; // worst case for non-ASCII in UTF-8
    if (count > 0 && size > MAX_BATCH_BYTES) break;
    count += 1;
  }
  return buffer.splice(0, count);
}

/** Send buffered lines with fetch (keepalive), one request of up to 200 lines at a time. */
export async function flush() {
  if (sending) return;
  sending = true;
  try {
    while (buffer.length) {
      const lines = takeBatch();
      let response;
      try {
        response = await fetch(ENDPOINT, {
          method: 'POST',
          credentials: 'same-origin',
          keepalive: true,
          headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({lines}),
        });
      } catch {
        buffer.unshift(...lines); // offline: keep them for the next round
        return;
      }
      if (response.status === 429 || response.status >= 500) {
        buffer.unshift(...lines);
        return;
      }
    }
  } finally {
    sending = false;
  }
}

/** Hand everything to the browser with sendBeacon: it delivers even as the page goes away. */
export function flushWithBeacon() {
  if (!navigator.sendBeacon) {
    flush();
    return;
  }
  while (buffer.length) {
    const lines = takeBatch();
    // text/plain keeps the beacon a "simple" request everywhere; the server reads the body as JSON anyway.
    const body = new Blob([JSON.stringify({lines})], {type: 'text/plain;charset=UTF-8'});
    if (!navigator.sendBeacon(ENDPOINT, body)) {
      buffer.unshift(...lines);
      return;
    }
  }
}

export const log = {
  debug: (tag, ...parts) => write('DEBUG', tag, parts),
  info: (tag, ...parts) => write('INFO', tag, parts),
  warn: (tag, ...parts) => write('WARN', tag, parts),
  error: (tag, ...parts) => write('ERROR', tag, parts),
  flush,
  flushWithBeacon,
  pending: () => buffer.length,
};

let started = false;

export function startLogShipping() {
  if (started) return;
  started = true;
  setInterval(flush, FLUSH_EVERY_MS);
  window.addEventListener('pagehide', flushWithBeacon);
  // Phones often freeze a background tab without a pagehide: ship what we have when it goes hidden.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') flushWithBeacon();
  });
  window.addEventListener('error', (event) => {
    log.error('window', event.message, `${event.filename || ''}:${event.lineno || ''}`);
  });
  window.addEventListener('unhandledrejection', (event) => {
    log.error('window', 'unhandled rejection:', event.reason instanceof Error ? event.reason : String(event.reason));
  });
}
