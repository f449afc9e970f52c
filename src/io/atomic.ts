// Atomic file writes: the data goes to a temporary file in the destination folder, which is
// renamed over the destination only once it is complete and flushed. A crash or an error part
// way leaves the old file (or no file) in place, never a truncated one. rename() is atomic only
// within one file system, which is why the temporary file sits beside the destination.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";

/** Returns a fresh temporary path beside `path` (same folder, hidden, unique per call). */
export function temporaryPathFor(path: string): string {
  const suffix = `${process.pid}.${randomBytes(6).toString("hex")}`;
  return join(dirname(path), `.${basename(path)}.${suffix}.tmp`);
}

/**
 * Writes a file atomically by calling `write(fd)` on a temporary file, then flushing it and
 * renaming it to `path`. The temporary file is removed when `write` or the rename throws.
 */
export function writeFileAtomicWith(path: string, write: (fd: number) => void): void {
  const tmp = temporaryPathFor(path);
  let fd: number | null = openSync(tmp, "wx");
  try {
    write(fd);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== null) closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Writes all of `data` at the current position of `fd`, looping over partial writes. */
export function writeAll(fd: number, data: Uint8Array): void {
  // fs.writeSync takes at most 2 GiB - 1 bytes per call, so large buffers go in chunks.
  const chunk = 1 << 30;
  let done = 0;
  while (done < data.byteLength) {
    const length = Math.min(chunk, data.byteLength - done);
    done += writeSync(fd, data, done, length);
  }
}

/** Writes a file atomically: a temporary file in the same folder, then a rename. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  writeFileAtomicWith(path, (fd) => writeAll(fd, bytes));
}
