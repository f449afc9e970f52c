// Datasets from the Hugging Face Hub, read from their Parquet files. A dataset repository either
// stores Parquet itself (e.g. "plain_text/train-00000-of-00001.parquet" or
// "data/train-00000-of-00001.parquet") or the Hub's converter writes it to the revision
// "refs/convert/parquet" ("plain_text/train/0000.parquet"); the reader tries the requested
// revision first and that one second.
import { downloadFile, listRepoFiles, parseRepoId, type HubOptions } from "../io/hub.js";
import { ignoredFormatFields } from "./formats.js";
import {
  detectRowFormat,
  readParquetRows,
  samplesFromRows,
  squadQuestionsFromRows,
  type Row,
  type RowFormat,
} from "./parquet.js";
import { squadSamples, type SquadQuestion } from "./squad.js";
import type { Sample } from "./types.js";

/** The Hub's revision that contains its automatic Parquet conversion of a dataset. */
export const PARQUET_REVISION = "refs/convert/parquet";

/** The two Hub calls the reader needs; the io hub client by default, replaceable in tests. */
export interface HubDatasetClient {
  listRepoFiles(repo: string, opts: { repoType: "dataset"; revision: string }): Promise<string[]>;
  downloadFile(opts: {
    repo: string;
    file: string;
    revision: string;
    repoType: "dataset";
  }): Promise<string>;
}

export interface HubDatasetOptions extends HubOptions {
  /** Split name (default "train"). */
  split?: string;
  /** Dataset configuration (subset), e.g. "plain_text"; needed when the repository has several. */
  config?: string;
  /** The answer trained for SQuAD 2.0 impossible questions; skipped when unset. */
  noAnswerText?: string;
  client?: HubDatasetClient;
}

export interface LoadedDataset {
  samples: Sample[];
  format: RowFormat | "jsonl-text" | "jsonl-prompt-completion" | "jsonl-messages" | "jsonl-fields";
  /** SQuAD questions with all gold answers (for evaluation), or null for other formats. */
  questions: SquadQuestion[] | null;
  /** Impossible SQuAD 2.0 questions left out (see noAnswerText). */
  skippedImpossible: number;
  /** The files read, local paths. */
  files: string[];
  /** Text samples left out because their text is empty or only whitespace. */
  skippedBlank?: number;
  /**
   * Fields of another format that the samples also have, which reading in `format` ignores
   * (for example "prompt" beside "messages").
   */
  ignoredFields?: string[];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Tells whether a repository path is a Parquet file of the split. */
export function isSplitFile(path: string, split: string): boolean {
  if (!path.endsWith(".parquet")) return false;
  const segments = path.split("/");
  const directories = segments.slice(0, -1);
  if (directories.some((dir) => dir === split || dir === `partial-${split}`)) return true;
  const base = segments[segments.length - 1].slice(0, -".parquet".length);
  return new RegExp(`(^|[-_.])${escapeRegExp(split)}([-_.]|$)`).test(base);
}

/**
 * Picks the Parquet files of a split (and configuration) from a repository listing, sorted so
 * shards are read in order. Throws when the split spans several configurations and none was
 * chosen.
 */
export function selectSplitFiles(
  files: readonly string[],
  split: string,
  config: string | undefined,
  repo: string,
): string[] {
  const matches = files.filter((path) => isSplitFile(path, split));
  if (config !== undefined) {
    return matches.filter((path) => path.split("/")[0] === config).sort();
  }
  const configs = [
    ...new Set(
      matches
        .filter((path) => path.includes("/"))
        .map((path) => path.split("/")[0])
        .filter((first) => first !== "data" && first !== split),
    ),
  ];
  if (configs.length > 1) {
    throw new Error(
      `loadHubDataset: ${repo} has the split "${split}" in several configurations ` +
        `(${configs.join(", ")}); choose one with the config option`,
    );
  }
  return matches.sort();
}

const defaultClient = (hub: HubOptions): HubDatasetClient => ({
  listRepoFiles: (repo, opts) => listRepoFiles(repo, { ...hub, ...opts }),
  downloadFile: (opts) => downloadFile({ ...hub, ...opts }),
});

async function findSplitFiles(
  client: HubDatasetClient,
  repo: string,
  revision: string,
  split: string,
  config: string | undefined,
): Promise<{ revision: string; files: string[] }> {
  const listed = await client.listRepoFiles(repo, { repoType: "dataset", revision });
  const files = selectSplitFiles(listed, split, config, repo);
  if (files.length > 0 || revision === PARQUET_REVISION) return { revision, files };

  let converted: string[];
  try {
    converted = await client.listRepoFiles(repo, {
      repoType: "dataset",
      revision: PARQUET_REVISION,
    });
  } catch {
    converted = [];
  }
  const convertedFiles = selectSplitFiles(converted, split, config, repo);
  if (convertedFiles.length > 0) return { revision: PARQUET_REVISION, files: convertedFiles };

  const parquet = [...listed, ...converted].filter((path) => path.endsWith(".parquet"));
  throw new Error(
    `loadHubDataset: no Parquet files for split "${split}"` +
      `${config === undefined ? "" : ` and config "${config}"`} in dataset ${repo}@${revision} ` +
      `or ${PARQUET_REVISION}; Parquet files found: ` +
      `${parquet.slice(0, 20).join(", ") || "(none)"}`,
  );
}

/** Turns rows of one split into samples, with SQuAD questions kept for evaluation. */
export function datasetFromRows(
  rows: readonly Row[],
  source: string,
  options: { noAnswerText?: string } = {},
): Omit<LoadedDataset, "files"> {
  if (rows.length === 0) throw new Error(`${source}: the dataset is empty (no rows)`);
  const format = detectRowFormat(Object.keys(rows[0]), source);
  if (format !== "squad") {
    const { samples, skippedBlank } = samplesFromRows(rows, format, source);
    return {
      samples,
      format,
      questions: null,
      skippedImpossible: 0,
      skippedBlank,
      ignoredFields: ignoredFormatFields(format, Object.keys(rows[0])),
    };
  }
  const questions = squadQuestionsFromRows(rows, source);
  const { samples, skippedImpossible } = squadSamples(questions, options);
  return { samples, format, questions, skippedImpossible };
}

/**
 * Loads one split of a Hub dataset, "owner/name" or "owner/name@revision", through the Hub
 * cache. All Parquet shards of the split are read, in name order.
 */
export async function loadHubDataset(
  id: string,
  options: HubDatasetOptions = {},
): Promise<LoadedDataset> {
  const { repo, revision } = parseRepoId(id);
  const split = options.split ?? "train";
  const client = options.client ?? defaultClient(options);
  const found = await findSplitFiles(client, repo, revision, split, options.config);

  const paths: string[] = [];
  const rows: Row[] = [];
  for (const file of found.files) {
    const path = await client.downloadFile({
      repo,
      file,
      revision: found.revision,
      repoType: "dataset",
    });
    paths.push(path);
    rows.push(...(await readParquetRows(path)));
  }
  const source = `${repo}@${found.revision} (${split})`;
  return { ...datasetFromRows(rows, source, options), files: paths };
}
