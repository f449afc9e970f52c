// Ctrl-C during `tslora train`: the run saves a checkpoint after the current step and exits with
// status 130, and --resume continues to the end.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { fixture } from "../helpers/fixtures.js";

const trainModule = fileURLToPath(new URL("../../src/cli/train.js", import.meta.url));

function runChild(
  args: string[],
  onStderr: (text: string, child: ReturnType<typeof spawn>) => void,
): Promise<{ status: number | null; stderr: string }> {
  const script =
    `import { runTrain } from ${JSON.stringify(trainModule)};\n` +
    `process.exitCode = await runTrain(${JSON.stringify(args)});\n`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, TSLORA_THREADS: "1" },
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    onStderr(stderr, child);
  });
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stderr })));
}

test("SIGINT saves a checkpoint and resume finishes", async () => {
  const out = join(mkdtempSync(join(tmpdir(), "tslora-sigint-")), "run");
  const args = [
    "--model",
    fixture("models/stories260K"),
    "--data",
    fixture("data/wikisql"),
    "--out",
    out,
    "--steps",
    "40",
    "--batch-size",
    "2",
    "--max-length",
    "96",
    "--eval-every",
    "0",
    "--save-every",
    "0",
    "--lr",
    "1e-3",
  ];
  let sent = false;
  const first = await runChild(args, (text, child) => {
    if (!sent && /step {1,2}2\/40/.test(text)) {
      sent = true;
      child.kill("SIGINT");
    }
  });
  assert.equal(first.status, 130, first.stderr);
  assert.match(first.stderr, /interrupt: saving a checkpoint/);
  assert.match(first.stderr, /saved checkpoint .*step-0000\d\d \(abort\)/);
  const latest = readFileSync(join(out, "checkpoints", "latest"), "utf8").trim();
  const savedStep = Number(latest.slice("step-".length));
  assert.ok(savedStep >= 2, `checkpoint at step ${savedStep}`);
  assert.ok(savedStep < 40, `checkpoint at step ${savedStep}`);
  assert.equal(existsSync(join(out, "adapter_model.safetensors")), false);

  const second = await runChild([...args, "--resume"], () => {});
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stderr, new RegExp(`resumed from .*${latest} at step ${savedStep}`));
  assert.ok(existsSync(join(out, "adapter_model.safetensors")));
  assert.ok(existsSync(join(out, "adapter_config.json")));
});

test("SIGINT during validation stops it", async () => {
  const out = join(mkdtempSync(join(tmpdir(), "tslora-sigint-val-")), "run");
  // The whole WikiSQL validation file (100 lines) at batch 1 takes seconds; the interrupt must
  // not wait for it.
  const args = [
    "--model",
    fixture("models/stories260K"),
    "--data",
    fixture("data/wikisql"),
    "--out",
    out,
    "--steps",
    "5",
    "--batch-size",
    "1",
    "--max-length",
    "128",
    "--save-every",
    "0",
  ];
  let sentAt = 0;
  const run = await runChild(args, (text, child) => {
    if (sentAt === 0 && /trainable params/.test(text)) {
      sentAt = performance.now();
      setTimeout(() => child.kill("SIGINT"), 200);
    }
  });
  const seconds = (performance.now() - sentAt) / 1000;
  assert.equal(run.status, 130, run.stderr);
  assert.match(run.stderr, /step 0 validation interrupted/);
  assert.doesNotMatch(run.stderr, /step +1\/5/, "training went on after the interrupt");
  assert.match(run.stderr, /saved checkpoint .*step-000000 \(abort\)/);
  assert.ok(seconds < 10, `the run took ${seconds.toFixed(1)} s to stop`);
});
