// Training checkpoints on disk. Layout under the run's checkpoint folder:
//
//   step-000010/            one complete checkpoint
//     adapter_config.json   \ the adapter in PEFT format
//     adapter_model.safetensors
//     optimizer.safetensors  optimizer moments and step count
//     trainer_state.json     step, data position, RNG state, run settings
//   latest                  text file naming the newest complete checkpoint folder
//
// A checkpoint is written into a hidden temporary folder and renamed into place when every file
// is flushed. Only after that rename is `latest` rewritten (atomically). An interruption at any
// point therefore leaves `latest` naming a complete checkpoint, or no `latest` at all.
import { formatValue } from "../engine/format-value.js";
import { makeFolder } from "../io/folders.js";
import {
  existsSync,
  fsyncSync,
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { basename, join } from "node:path";
import { writeFileAtomic } from "../io/atomic.js";
import { FIX_CORRUPT } from "../io/safetensors-header.js";

export const TRAINER_STATE_FILE = "trainer_state.json";
export const LATEST_FILE = "latest";
const STATE_FORMAT = 1;

/** The trainer's own part of a checkpoint (trainer_state.json). */
export interface TrainerState {
  format: number;
  /** Optimizer steps completed. */
  step: number;
  totalSteps: number;
  epoch: number;
  /** The batch source's position (JSON), restored on resume. */
  dataPosition: unknown;
  /** The random generator's state (JSON), restored on resume. */
  rngState: unknown;
  /** Free-form run settings, compared on resume to catch a changed command line. */
  settings: Record<string, unknown>;
}

/** Files that the caller adds to each checkpoint (adapter, optimizer) and reads back. */
export interface CheckpointParts {
  /** Writes the caller's files into `dir`, an empty folder. */
  save(dir: string): void;
  /** Restores the caller's state from the files in `dir`. */
  load(dir: string): void;
}

function stepFolderName(step: number): string {
  return `step-${String(step).padStart(6, "0")}`;
}

function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class CheckpointStore {
  readonly root: string;
  /** Complete checkpoints kept on disk; older ones are deleted after a save. */
  readonly keepLast: number;

  constructor(root: string, keepLast = 2) {
    if (!(Number.isInteger(keepLast) && keepLast >= 1)) {
      throw new Error(
        `CheckpointStore: keepLast must be a whole number >= 1, got ${formatValue(keepLast)}`,
      );
    }
    this.root = root;
    this.keepLast = keepLast;
  }

  /** Writes a checkpoint and points `latest` at it. Returns the checkpoint folder. */
  save(state: TrainerState, parts: CheckpointParts): string {
    makeFolder(this.root);
    const name = stepFolderName(state.step);
    const final = join(this.root, name);
    const tmp = join(this.root, `.${name}.${process.pid}.tmp`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    try {
      parts.save(tmp);
      writeFileAtomic(join(tmp, TRAINER_STATE_FILE), JSON.stringify(state, null, 2) + "\n");
      for (const file of readdirSync(tmp)) fsyncPath(join(tmp, file));
      // Saving twice at one step (a final save right after a periodic one) replaces the folder.
      rmSync(final, { recursive: true, force: true });
      renameSync(tmp, final);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
    writeFileAtomic(join(this.root, LATEST_FILE), name + "\n");
    this.prune(name);
    return final;
  }

  /** Returns the folder named by `latest`, or null when no checkpoint was completed. */
  latestDir(): string | null {
    const pointer = join(this.root, LATEST_FILE);
    if (!existsSync(pointer)) return null;
    const name = readFileSync(pointer, "utf8").trim();
    const dir = join(this.root, name);
    if (!/^step-\d+$/.test(name) || !existsSync(join(dir, TRAINER_STATE_FILE))) {
      throw new Error(
        `checkpoint: ${pointer} names "${name}", which is not a complete checkpoint folder ` +
          `in ${this.root}. ${this.recoveryHint(name)}`,
      );
    }
    return dir;
  }

  /**
   * Reads trainer_state.json of a checkpoint folder and restores the caller's parts. `check`
   * receives the state first. A resume with other settings is then rejected as such before the
   * parts are read, which those settings may shape differently.
   */
  load(dir: string, parts: CheckpointParts, check?: (state: TrainerState) => void): TrainerState {
    const path = join(dir, TRAINER_STATE_FILE);
    let state: TrainerState;
    const name = basename(dir);
    try {
      state = JSON.parse(readFileSync(path, "utf8")) as TrainerState;
    } catch (err) {
      throw new Error(
        `checkpoint: cannot read ${path}: ${(err as Error).message}. ${this.recoveryHint(name)}`,
      );
    }
    if (state.format !== STATE_FORMAT || !Number.isInteger(state.step)) {
      throw new Error(
        `checkpoint: ${path} has format ${String(state.format)} and step ${String(state.step)}; ` +
          `expected format ${STATE_FORMAT} and a whole step number`,
      );
    }
    check?.(state);
    try {
      parts.load(dir);
    } catch (err) {
      // The reader's advice to download the file again does not apply to a run's own files.
      const problem = (err as Error).message.replace(`. ${FIX_CORRUPT}`, "");
      throw new Error(`checkpoint: ${dir} is damaged: ${problem}. ${this.recoveryHint(name)}`);
    }
    return state;
  }

  /**
   * Returns what to do when checkpoint `broken` cannot be read: resume from another complete
   * checkpoint of the run by naming it in the latest file, or start over elsewhere.
   */
  private recoveryHint(broken: string): string {
    const others = existsSync(this.root)
      ? readdirSync(this.root)
          .filter((name) => /^step-\d+$/.test(name) && name !== broken)
          .filter((name) => existsSync(join(this.root, name, TRAINER_STATE_FILE)))
          .sort()
          .reverse()
      : [];
    const pointer = join(this.root, LATEST_FILE);
    if (others.length === 0) {
      return (
        `No other complete checkpoint is in ${this.root}, so start a new run in another ` +
        `output folder.`
      );
    }
    return (
      `To resume from an earlier checkpoint, write its name (${others.join(", ")}) into ` +
      `${pointer}, or start a new run in another output folder.`
    );
  }

  private prune(newest: string): void {
    const folders = readdirSync(this.root)
      .filter((name) => /^step-\d+$/.test(name) && name !== newest)
      .filter((name) => statSync(join(this.root, name)).isDirectory())
      .sort();
    const excess = folders.length - (this.keepLast - 1);
    for (const name of folders.slice(0, Math.max(0, excess))) {
      rmSync(join(this.root, name), { recursive: true, force: true });
    }
  }
}

export function newTrainerState(fields: Omit<TrainerState, "format">): TrainerState {
  return { format: STATE_FORMAT, ...fields };
}
