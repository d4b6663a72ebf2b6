// Call IDs (api.md): 8 characters from ABCDEFGHJKLMNPQRSTUVWXYZ23456789 — no I, O, 0 or 1.

export const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
export const CALL_ID_LENGTH = 8;
const PATTERN = /^[A-HJ-NP-Z2-9]{8}$/;

export function isCallId(value) {
  return PATTERN.test(value);
}

/** What the user typed, upper-cased, without the spaces and dashes people add when reading IDs aloud. */
export function normalize(raw) {
  return String(raw || '').toUpperCase().replace(/[\s\-_.]/g, '');
}

/**
 * Check a Call ID as it is typed.
 * Returns {value, valid, error, hint}: `error` explains a character that can never be right (at once),
 * `hint` says how many characters are still missing (only an error once the user tries to call).
 */
export function checkCallId(raw) {
  const value = normalize(raw);
  if (!value) return {value, valid: false, error: '', hint: 'Call IDs have 8 characters, like K7XM2PQ9.'};
  for (const ch of value) {
    if (ALPHABET.includes(ch)) continue;
    if (ch === 'O' || ch === '0') {
      return {value, valid: false, error: 'Call IDs never contain the letter O or the digit 0 — they are left out ' +
        'so they can’t be mixed up. Check that character again with the person you are calling.'};
    }
    if (ch === 'I' || ch === '1') {
      return {value, valid: false, error: 'Call IDs never contain the letter I or the digit 1 — they are left out ' +
        'so they can’t be mixed up with each other or with L. Check that character again.'};
    }
    return {value, valid: false, error: `“${ch}” can’t be part of a Call ID: they use only the letters A–Z ` +
      '(without I and O) and the digits 2–9.'};
  }
  if (value.length > CALL_ID_LENGTH) {
    return {value, valid: false, error: `A Call ID has exactly 8 characters; this has ${value.length}.`};
  }
  if (value.length < CALL_ID_LENGTH) {
    const missing = CALL_ID_LENGTH - value.length;
    return {value, valid: false, error: '', hint: `${missing} more character${missing === 1 ? '' : 's'}.`};
  }
  return {value, valid: true, error: '', hint: 'Looks good.'};
}
