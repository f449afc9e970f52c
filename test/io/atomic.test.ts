// Atomic writes: the destination changes only when the new contents are complete.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeFileAtomic, writeFileAtomicWith } from "../../src/io/atomic.js";

function withTempDir(body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "tslora-atomic-"));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("writeFileAtomic replaces contents", () => {
  withTempDir((dir) => {
    const path = join(dir, "state.json");
    writeFileAtomic(path, "first");
    writeFileAtomic(path, Uint8Array.of(0x61, 0x62));
    assert.equal(readFileSync(path, "utf8"), "ab");
    assert.deepEqual(readdirSync(dir), ["state.json"]);
  });
});

test("failed write keeps old file, no temp", () => {
  withTempDir((dir) => {
    const path = join(dir, "state.json");
    writeFileSync(path, "old");
    assert.throws(
      () =>
        writeFileAtomicWith(path, (fd) => {
          writeSync(fd, "half of the new conte");
          throw new Error("disk full");
        }),
      /disk full/,
    );
    assert.equal(readFileSync(path, "utf8"), "old");
    assert.deepEqual(readdirSync(dir), ["state.json"]);
  });
});

test("missing folder fails cleanly", () => {
  withTempDir((dir) => {
    assert.throws(() => writeFileAtomic(join(dir, "no", "such", "file"), "x"), /ENOENT/);
    assert.deepEqual(readdirSync(dir), []);
  });
});
