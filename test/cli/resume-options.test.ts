// `tslora train --out <dir> --resume` fills the options it is not given from the run's
// train_config.json, with relative paths taken from the folder the run was started in.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { withRunSettings } from "../../src/cli/resume-options.js";

const work = mkdtempSync(join(tmpdir(), "tslora-resume-options-"));
after(() => rmSync(work, { recursive: true, force: true }));

test("resume resolves the run's relative paths", () => {
  const started = join(work, "project");
  mkdirSync(join(started, "data"), { recursive: true });
  writeFileSync(join(started, "data", "train.jsonl"), '{"text": "x"}\n');
  const out = join(started, "runs", "a");
  mkdirSync(out, { recursive: true });
  const settings = {
    model: "owner/model",
    data: "data/train.jsonl",
    valData: "data/missing.jsonl",
    workingDirectory: started,
  };
  writeFileSync(join(out, "train_config.json"), JSON.stringify(settings));

  const { argv, taken } = withRunSettings(["--out", out, "--resume"]);
  const valueOf = (option: string) => argv[argv.indexOf(option) + 1];
  assert.deepEqual(taken, ["model", "data", "val-data"]);
  // A file that exists in the run's folder becomes absolute; a Hub id or a path that is not
  // there stays as written.
  assert.equal(valueOf("--data"), join(started, "data", "train.jsonl"));
  assert.equal(valueOf("--model"), "owner/model");
  assert.equal(valueOf("--val-data"), "data/missing.jsonl");

  // A given option wins over the run's.
  const given = withRunSettings(["--out", out, "--resume", "--data", "other.jsonl"]);
  assert.equal(given.argv.filter((a) => a === "--data").length, 1);
  assert.ok(!given.taken.includes("data"));
});
