// loadModel warns when the tokenizer has more token ids than the model has embeddings.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadModel } from "../../src/models/index.js";
import { fixture } from "../helpers/fixtures.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const scratch = mkdtempSync(join(tmpdir(), "tslora-load-warnings-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Loads the model in `dir` and returns the messages of the warnings emitted meanwhile. */
async function warningsOfLoad(dir: string): Promise<string[]> {
  const messages: string[] = [];
  const listener = (warning: Error) => messages.push(`${warning.name}: ${warning.message}`);
  process.on("warning", listener);
  try {
    const { model } = await loadModel(dir);
    model.dispose();
  } finally {
    process.off("warning", listener);
  }
  return messages;
}

test("loadModel warns about a larger tokenizer", async () => {
  // stories260K's tokenizer has 512 ids; the tiny model has 64 embeddings.
  const small = join(scratch, "small");
  writeTinyModel(small, "llama", { tokenizerFrom: fixture("models/stories260K") });
  const messages = await warningsOfLoad(small);
  assert.equal(messages.length, 1, messages.join("\n"));
  assert.match(
    messages[0],
    /^TokenizerWarning: the tokenizer in \S+ has 512 token ids, but the model's vocab_size is 64/,
  );

  const matching = join(scratch, "matching");
  writeTinyModel(matching, "llama", {
    config: { vocab_size: 512 },
    tokenizerFrom: fixture("models/stories260K"),
  });
  assert.deepEqual(await warningsOfLoad(matching), []);
});
