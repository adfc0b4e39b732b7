/**
 * Python's notion of whitespace (`str.isspace`), so that `strip()`/`rstrip()`
 * here cut exactly what the seed's Python handlers and transformers' Jinja
 * templates cut. JavaScript's `trim()` differs: it keeps U+001C..U+001F and
 * U+0085 and removes U+FEFF.
 */
const PY_SPACE =
  "\t\n\u000b\u000c\r\u001c\u001d\u001e\u001f \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";

function isPythonSpace(ch: string): boolean {
  return ch.length === 1 && PY_SPACE.includes(ch);
}

/** Python's `s.rstrip()`. */
export function pyRstrip(text: string): string {
  let end = text.length;
  while (end > 0 && isPythonSpace(text[end - 1]!)) end--;
  return text.slice(0, end);
}

/** Python's `s.lstrip()`. */
export function pyLstrip(text: string): string {
  let start = 0;
  while (start < text.length && isPythonSpace(text[start]!)) start++;
  return text.slice(start);
}

/** Python's `s.strip()`. */
export function pyStrip(text: string): string {
  return pyLstrip(pyRstrip(text));
}
