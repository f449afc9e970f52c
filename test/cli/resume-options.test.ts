// `tslora train --out <dir> --resume` fills the options it is not given from the run's
// train_config.json, with relative paths taken from the folder the run was started in, and
// compares the run's paths by the location they name.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { withRunSettings } from "../../src/cli/resume-options.js";
import { fixture } from "../helpers/fixtures.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

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
  const explicit = withRunSettings(["--out", out, "--resume", "--data", "other.jsonl"]);
  assert.equal(explicit.argv.filter((a) => a === "--data").length, 1);
  assert.ok(!explicit.taken.includes("data"));
});

test("resume of a run with relative paths from any folder", () => {
  const project = join(work, "relative");
  mkdirSync(join(project, "d"), { recursive: true });
  cpSync(fixture("models/stories260K"), join(project, "m"), { recursive: true });
  const lines = '{"text": "Once upon a time there was a cat named Tom."}\n'.repeat(12);
  writeFileSync(join(project, "d", "t.jsonl"), lines);
  const run = (cwd: string, ...args: string[]) =>
    spawnSync(process.execPath, [MAIN, "train", ...args], {
      cwd,
      encoding: "utf8",
      env: { ...process.env, TSLORA_THREADS: "1", HF_HUB_OFFLINE: "1" },
    });
  const first = run(project, "--model", "m", "--data", "d/t.jsonl", "--out", "r", "--steps", "2");
  assert.equal(first.status, 0, first.stderr);

  // From the run's folder, with only --out and --resume.
  const same = run(project, "--out", "r", "--resume", "--steps", "3");
  assert.equal(same.status, 0, same.stderr);
  assert.match(same.stderr, /resumed from \S*step-000002 at step 2/);
  // From another folder, with the paths as the run recorded them or as seen from there.
  const elsewhere = run(work, "--out", join(project, "r"), "--resume", "--steps", "4");
  assert.equal(elsewhere.status, 0, elsewhere.stderr);
  const retyped = run(
    work,
    ...["--out", "relative/r", "--resume", "--steps", "5"],
    ...["--model", "relative/m", "--data", "relative/d/t.jsonl"],
  );
  assert.equal(retyped.status, 0, retyped.stderr);
  assert.match(retyped.stderr, /resumed from \S*step-000004 at step 4/);
  const config = JSON.parse(readFileSync(join(project, "r", "train_config.json"), "utf8")) as {
    model: string;
    workingDirectory: string;
  };
  assert.equal(config.model, "m");
  assert.equal(config.workingDirectory, project);

  // Another model is rejected as changed settings, before the checkpoint's tensors are read.
  const other = run(
    work,
    ...["--out", "relative/r", "--resume", "--steps", "6"],
    ...["--model", fixture("models/TinyStories-656K")],
  );
  assert.equal(other.status, 1);
  assert.match(other.stderr, /settings changed since it was saved \(model: "m" -> /);
});
