// One entry point for every dataset source: a SQuAD .json file, a .jsonl file, a .parquet file,
// a folder with one file per split (train.jsonl, valid.jsonl, ... as mlx-lm lays them out), or
// a Hub dataset id.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import {
  datasetFromRows,
  loadHubDataset,
  type HubDatasetOptions,
  type LoadedDataset,
} from "./hub-dataset.js";
import { readJsonl } from "./jsonl.js";
import { readParquetRows } from "./parquet.js";
import { readSquad, squadSamples } from "./squad.js";

export interface LoadDatasetOptions extends HubDatasetOptions {
  /** JSONL: a field whose equal values keep lines on the same side of the validation split. */
  groupField?: string;
  /** JSONL: read lines as template fields instead of text, prompt/completion or messages. */
  fields?: boolean;
}

// Split names and the file names they may have in a folder; "valid" is mlx-lm's name.
const SPLIT_ALIASES: Record<string, string[]> = {
  train: ["train"],
  validation: ["validation", "valid", "dev"],
  valid: ["valid", "validation", "dev"],
  test: ["test"],
};

function splitFileInFolder(dir: string, split: string): string {
  const names = SPLIT_ALIASES[split] ?? [split];
  const present = readdirSync(dir);
  for (const name of names) {
    const found = [".jsonl", ".json", ".parquet"]
      .map((extension) => name + extension)
      .filter((file) => present.includes(file));
    if (found.length === 0) continue;
    const path = join(dir, found[0]);
    if (statSync(path).isDirectory()) {
      throw new Error(`loadDataset: ${path} is a folder; the "${split}" split must be a file`);
    }
    if (found.length > 1) {
      console.warn(
        `loadDataset: ${dir} has ${found.join(" and ")} for the "${split}" split; ` +
          `reading ${found[0]} (move the others out of the folder to silence this)`,
      );
    }
    return path;
  }
  throw new Error(
    `loadDataset: no file for split "${split}" in ${dir} (looked for ` +
      `${names.map((n) => `${n}.jsonl, ${n}.json, ${n}.parquet`).join(", ")}); files: ` +
      `${present.join(", ") || "(none)"}`,
  );
}

/**
 * Reads a SQuAD .json file. A JSON Lines file named .json, as some exporters write it, gets
 * an error that asks for the .jsonl extension.
 */
function readSquadOrExplain(path: string): ReturnType<typeof readSquad> {
  try {
    return readSquad(path);
  } catch (err) {
    const message = (err as Error).message;
    if (!/invalid JSON/.test(message) || !looksLikeJsonLines(path)) throw err;
    throw new Error(
      `${message}. The file has one JSON object per line: JSON Lines data must be named ` +
        `.jsonl, so rename it`,
    );
  }
}

function looksLikeJsonLines(path: string): boolean {
  const lines = readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .slice(0, 3);
  return (
    lines.length >= 2 &&
    lines.every((line) => {
      try {
        const value: unknown = JSON.parse(line);
        return typeof value === "object" && value !== null && !Array.isArray(value);
      } catch {
        return false;
      }
    })
  );
}

async function loadFile(path: string, options: LoadDatasetOptions): Promise<LoadedDataset> {
  const extension = extname(path).toLowerCase();
  if (extension === ".json") {
    const questions = readSquadOrExplain(path);
    const { samples, skippedImpossible } = squadSamples(questions, options);
    return { samples, format: "squad", questions, skippedImpossible, files: [path] };
  }
  if (extension === ".jsonl") {
    const { samples, format, skippedBlank, ignoredFields } = readJsonl(path, options);
    return {
      samples,
      format: `jsonl-${format}`,
      questions: null,
      skippedImpossible: 0,
      files: [path],
      skippedBlank,
      ignoredFields,
    };
  }
  if (extension === ".parquet") {
    return { ...datasetFromRows(await readParquetRows(path), path, options), files: [path] };
  }
  throw new Error(
    `loadDataset: ${path}: unknown file type "${extension}"; expected .json (SQuAD), .jsonl ` +
      `or .parquet. For plain text, write one {"text": "..."} JSON object per line into a ` +
      `.jsonl file`,
  );
}

/**
 * Loads one split of a dataset from a file, a folder or the Hub. A file is read whole whatever
 * the split; a folder and a Hub id are searched for the split (default "train").
 */
export async function loadDataset(
  source: string,
  options: LoadDatasetOptions = {},
): Promise<LoadedDataset> {
  if (existsSync(source)) {
    const path = statSync(source).isDirectory()
      ? splitFileInFolder(source, options.split ?? "train")
      : source;
    return loadFile(path, options);
  }
  if (/^[\w.-]+\/[\w.-]+(@.+)?$/.test(source) && !/\.(jsonl?|parquet)$/.test(source)) {
    return loadHubDataset(source, options);
  }
  throw new Error(
    `loadDataset: ${JSON.stringify(source)} is neither an existing file or folder nor a Hub ` +
      `dataset id ("owner/name"); check the path`,
  );
}
