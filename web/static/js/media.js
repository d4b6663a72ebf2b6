// What a call needs before its peer connection exists: the microphone and a fresh ICE config (docs/web.md
// "WebRTC choices"), and the test-only switch that forces the TURN relay. Knows nothing of the call's state.

import {api} from './api.js';

/** Test-only switch: force TURN relay (iceTransportPolicy 'relay'). See docs/web.md. */
export function relayOnlyRequested() {
  try {
    const params = new URLSearchParams(location.search);
    if (params.has('forceRelay')) {
      const on = params.get('forceRelay') !== '0';
      if (on) sessionStorage.setItem('opencall.forceRelay', '1');
      else sessionStorage.removeItem('opencall.forceRelay');
    }
    return sessionStorage.getItem('opencall.forceRelay') === '1' || localStorage.getItem('opencall.forceRelay') === '1';
  } catch {
    return false;
  }
}

function micError(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Microphone access was blocked. Allow the microphone for this site in your browser’s settings, then try again.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No microphone was found on this device.';
    case 'NotReadableError':
      return 'The microphone is busy in another app. Close that app and try again.';
    default:
      return `The microphone could not be started (${(err && err.message) || 'unknown error'}).`;
  }
}

/** ICE servers are fetched fresh for every call: the TURN credentials in them expire. */
export async function fetchIceConfig() {
  try {
    const config = await api('/api/ice-config');
    return config && Array.isArray(config.iceServers) ? config : {iceServers: []};
  } catch (err) {
    const wrapped = new Error(`Could not get the connection settings from the server: ${err.message}`);
    wrapped.userMessage = wrapped.message;
    throw wrapped;
  }
}

/** The microphone's stream; errors carry a `userMessage` that says what to do. */
export async function getMicrophone() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    const err = new Error('This browser cannot use the microphone here. Open the box over https:// (see “Trust this box”).');
    err.userMessage = err.message;
    throw err;
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: {echoCancellation: true, noiseSuppression: true, autoGainControl: true},
      video: false,
    });
  } catch (err) {
    const wrapped = new Error(micError(err));
    wrapped.userMessage = wrapped.message;
    throw wrapped;
  }
}

/** The RTCPeerConnection configuration for an ICE config: relay only when `forceRelay`. */
export function peerConfig(ice, forceRelay) {
  const config = {...ice};
  if (forceRelay) config.iceTransportPolicy = 'relay';
  return config;
}
