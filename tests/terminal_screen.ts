/**
 * What a terminal shows after some output, for tests of what a user sees: the rows of text,
 * following carriage returns, line feeds and "erase to the end of the row" (`ESC [ K`); other
 * escape sequences are dropped. Each character takes one column.
 */

export function screen(output: string): string[] {
  const rows: string[][] = [[]];
  let row = 0;
  let col = 0;
  const chars = Array.from(output);
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i]!;
    if (char === "\r") col = 0;
    else if (char === "\n") rows[++row] ??= [];
    else if (char === "\x1b") {
      const sequence = "\x1b" +
        (/^\[[0-9;?]*[@-~]/.exec(chars.slice(i + 1, i + 16).join(""))?.[0] ?? "");
      if (sequence.endsWith("K")) rows[row]!.length = col;
      i += sequence.length - 1;
    } else {
      const current = rows[row]!;
      while (current.length < col) current.push(" ");
      current[col++] = char;
    }
  }
  return rows.map((r) => r.join(""));
}
