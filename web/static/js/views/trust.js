// "Trust this box": install the box's local CA certificate (/ca.crt) so phones accept its HTTPS address.

import {api} from '../api.js';
import {h, icon} from '../dom.js';
import {banner, card} from './common.js';

const PLATFORMS = [
  ['android', 'Android', [
    'Tap “Download the certificate” above.',
    'Open Settings → Security (or “Security & privacy”) → More security settings → Encryption & credentials → Install a certificate → CA certificate.',
    'Choose “Install anyway”, then pick the downloaded opencall-ca.crt.',
    'Open this box’s https:// address again in Chrome: the warning is gone.',
  ]],
  ['ios', 'iPhone and iPad', [
    'Open this page in Safari and tap “Download the certificate”; allow the configuration profile download.',
    'Open Settings → General → VPN & Device Management, tap the OpenCall profile and tap Install.',
    'Then Settings → General → About → Certificate Trust Settings: turn on full trust for the OpenCall certificate.',
    'Reload this box’s https:// address.',
  ]],
  ['windows', 'Windows', [
    'Download the certificate and double-click opencall-ca.crt.',
    'Click “Install Certificate…”, choose “Current User”, then “Place all certificates in the following store”.',
    'Browse to “Trusted Root Certification Authorities”, finish, and confirm the security warning.',
    'Restart the browser. Firefox: Settings → Privacy & Security → Certificates → View Certificates → Authorities → Import.',
  ]],
  ['macos', 'macOS', [
    'Download the certificate and double-click it: Keychain Access opens; add it to the “System” keychain.',
    'Double-click the OpenCall certificate in Keychain Access, open “Trust” and set “When using this certificate” to “Always Trust”.',
    'Close the window (enter your password) and restart the browser.',
  ]],
  ['linux', 'Linux', [
    'System-wide (Debian/Ubuntu): sudo cp opencall-ca.crt /usr/local/share/ca-certificates/ && sudo update-ca-certificates',
    'Chrome/Chromium: Settings → Privacy and security → Security → Manage certificates → Authorities → Import.',
    'Firefox: Settings → Privacy & Security → Certificates → View Certificates → Authorities → Import, tick “Trust this CA to identify websites”.',
  ]],
];

function guessPlatform() {
  const ua = navigator.userAgent;
  if (/Android/i.test(ua)) return 'android';
  if (/iPhone|iPad|iPod/i.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1)) return 'ios';
  if (/Windows/i.test(ua)) return 'windows';
  if (/Macintosh/i.test(ua)) return 'macos';
  return 'linux';
}

function steps() {
  const mine = guessPlatform();
  return h('div', {class: 'platforms'}, PLATFORMS.map(([id, title, items]) => h('details', {class: 'platform', open: id === mine},
    h('summary', {}, title, id === mine ? h('span', {class: 'chip', text: 'this device'}) : null),
    h('ol', {class: 'steps'}, items.map((text) => h('li', {text}))))));
}

export function trustView() {
  const status = h('div', {'aria-live': 'polite'}, h('p', {class: 'muted', text: 'Checking how this box serves HTTPS…'}));
  const download = h('a', {class: 'btn primary', href: '/ca.crt', download: 'opencall-ca.crt', 'data-external': ''},
    icon('shield', 18), h('span', {text: 'Download the certificate'}));
  const body = h('div', {class: 'stack'});
  const node = h('div', {class: 'page narrow trust'}, card(
    h('h1', {class: 'card-title', text: 'Trust this box'}),
    h('p', {text: 'Browsers only allow the microphone on secure (https://) pages. This OpenCall box can make its own ' +
      'certificate authority (CA), so it works on your Wi-Fi without the internet. Install its CA certificate once ' +
      'per device and the browser trusts the box — no more warnings.'}),
    status, body));

  const show = (info) => {
    const tls = info && info.tls;
    if (tls === 'auto') {
      status.replaceChildren(banner('This box uses its own certificate authority. Install it on each phone or computer that calls.', 'info'));
      body.replaceChildren(
        h('div', {class: 'row'}, download),
        h('p', {class: 'muted small', text: 'Only install a certificate from a box you run yourself or trust: ' +
          'a trusted CA can vouch for any website on that device.'}),
        h('h2', {class: 'card-title small-title', text: 'Step by step'}),
        steps());
    } else if (tls === 'off') {
      status.replaceChildren(banner('This box is not using its own certificate: it serves plain HTTP (tls: off). ' +
        'There is nothing to install. Browsers allow the microphone only on https:// or on this computer itself ' +
        '(localhost), so turn HTTPS on (server.tls: auto) to call from phones, or put OpenCall behind your own HTTPS proxy.', 'warn'));
      body.replaceChildren();
    } else if (tls === 'files') {
      status.replaceChildren(banner('This box is not using its own certificate authority: it uses a certificate ' +
        'its operator provided. If that certificate comes from a public authority, there is nothing to install. ' +
        'Otherwise ask whoever runs the box for their CA certificate.', 'info'));
      body.replaceChildren();
    } else {
      status.replaceChildren(banner('Could not ask the box how it serves HTTPS. If your browser warns about this ' +
        'box’s certificate, download it below and follow the steps for your device.', 'warn'));
      body.replaceChildren(h('div', {class: 'row'}, download), steps());
    }
  };
  api('/api/server-info').then(show).catch(() => show(null));
  return {node, title: 'Trust this box'};
}
