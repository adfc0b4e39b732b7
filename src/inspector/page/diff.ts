/** A token-level diff (longest common subsequence): what two prompts or answers share and where they differ. */

export interface DiffPart {
  op: "same" | "removed" | "added";
  text: string;
}

/** The common-subsequence lengths of every pair of suffixes: table[i][j] for a[i:], b[j:]. */
function suffixTable(a: readonly string[], b: readonly string[]): Uint32Array[] {
  const table = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      table[i]![j] = a[i] === b[j] ? table[i + 1]![j + 1]! + 1 : Math.max(table[i + 1]![j]!, table[i]![j + 1]!);
    }
  }
  return table;
}

function push(parts: DiffPart[], op: DiffPart["op"], text: string): void {
  const last = parts.at(-1);
  if (last?.op === op) last.text += text;
  else parts.push({ op, text });
}

/** `a` turned into `b`, runs of one kind joined. */
export function diffTokens(a: readonly string[], b: readonly string[]): DiffPart[] {
  const table = suffixTable(a, b);
  const parts: DiffPart[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      push(parts, "same", a[i++]!);
      j++;
    } else if (j < b.length && (i === a.length || table[i]![j + 1]! >= table[i + 1]![j]!)) {
      push(parts, "added", b[j++]!);
    } else {
      push(parts, "removed", a[i++]!);
    }
  }
  return parts;
}
