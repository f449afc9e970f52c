// Reading data files as UTF-8 text. readFileSync(path, "utf8") turns every byte sequence that
// is not UTF-8 into U+FFFD without an error, so a Latin-1 file would train on replacement
// characters. This reader rejects such files and reports the line of the first bad byte.
import { readFileSync } from "node:fs";

const strict = new TextDecoder("utf-8", { fatal: true });

/**
 * Returns the contents of `path` decoded as UTF-8 (a UTF-8 byte order mark is kept for the
 * caller to strip). Throws, naming the file and the line, when the bytes are UTF-16 or not
 * valid UTF-8. `caller` prefixes the message.
 */
export function readUtf8File(path: string, caller: string): string {
  const bytes = readFileSync(path);
  const utf16 =
    bytes.length >= 2 &&
    ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff));
  if (utf16) {
    throw new Error(
      `${caller}: ${path} is UTF-16 text (it starts with a UTF-16 byte order mark); ` +
        `convert it to UTF-8, for example with iconv -f UTF-16 -t UTF-8`,
    );
  }
  try {
    return strict.decode(bytes);
  } catch {
    const line = firstInvalidLine(bytes);
    throw new Error(
      `${caller}: ${path}:${line}: the file is not valid UTF-8 (it may be Latin-1 or ` +
        `Windows-1252); convert it to UTF-8, for example with iconv -f LATIN1 -t UTF-8`,
    );
  }
}

/** Returns the 1-based number of the first line whose bytes are not valid UTF-8. */
function firstInvalidLine(bytes: Buffer): number {
  let start = 0;
  let line = 1;
  while (start <= bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    try {
      strict.decode(bytes.subarray(start, end));
    } catch {
      return line;
    }
    start = end + 1;
    line++;
  }
  return line;
}
