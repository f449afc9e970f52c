#!/usr/bin/env node
// The `tslora` command: dispatches to one module per verb. Verb modules are imported on
// demand, so `tslora info` does not load the training code.
import { readFileSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { UsageError } from "./train-options.js";

interface Verb {
  summary: string;
  run(argv: readonly string[]): Promise<number>;
}

const VERBS: Record<string, Verb> = {
  train: {
    summary: "Fine-tune a LoRA adapter on a dataset.",
    run: async (argv) => (await import("./train.js")).runTrain(argv),
  },
  eval: {
    summary: "Loss, perplexity and SQuAD scores of a model, with or without an adapter.",
    run: async (argv) => (await import("./eval.js")).runEval(argv),
  },
  generate: {
    summary: "Generate text after a prompt, streamed to stdout.",
    run: async (argv) => (await import("./generate.js")).runGenerate(argv),
  },
  merge: {
    summary: "Merge a LoRA adapter into the base weights and save the model.",
    run: async (argv) => (await import("./merge.js")).runMerge(argv),
  },
  info: {
    summary: "Architecture, parameter count, dtype and memory needs of a model.",
    run: async (argv) => (await import("./info.js")).runInfo(argv),
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(VERBS).map((v) => v.length));
  const lines = ["Usage: tslora <command> [options]", "", "Commands:"];
  for (const [name, verb] of Object.entries(VERBS))
    lines.push(`  ${name.padEnd(width)}  ${verb.summary}`);
  lines.push(
    "",
    "Run tslora <command> --help for the options of a command, tslora --version for the version.",
  );
  return lines.join("\n");
}

/** Reads the package version from package.json (dist/src/cli/main.js is three levels down). */
function packageVersion(): string {
  const path = new URL("../../../package.json", import.meta.url);
  try {
    const json = JSON.parse(readFileSync(path, "utf8")) as { version?: unknown };
    return typeof json.version === "string" ? json.version : "unknown";
  } catch {
    return "unknown";
  }
}

/** Runs the command line `argv` (without node and the script path); resolves to the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-v") {
    console.log(`tslora ${packageVersion()}`);
    return 0;
  }
  const verb = VERBS[name];
  if (verb === undefined) {
    console.error(`tslora: unknown command "${name}"; commands: ${Object.keys(VERBS).join(", ")}`);
    return 2;
  }
  try {
    return await verb.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      const prefix = `tslora ${name}: `;
      console.error(err.message.startsWith(prefix) ? err.message : prefix + err.message);
      return 2;
    }
    const message = err instanceof Error ? err.message : String(err);
    console.error(`tslora ${name}: ${withoutSourcePrefix(message, name)}`);
    return 1;
  }
}

/**
 * Drops the prefix that names where an error was raised, "train: " or a function name such as
 * "readJsonl: " or "KVCache.begin: ", which library callers see but which means nothing at the
 * command line. File names ("model.safetensors: ") have no capital after a lower-case start and
 * are kept.
 */
export function withoutSourcePrefix(message: string, verb: string): string {
  if (message.startsWith(`${verb}: `)) return message.slice(verb.length + 2);
  const match = /^(?:[a-z]+[A-Z][A-Za-z]*|[A-Z][A-Za-z]*\.[a-z][A-Za-z]*): (?=\S)/.exec(message);
  return match === null ? message : message.slice(match[0].length);
}

/** True when this file is the program node started (directly or through the npm bin link). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

/**
 * Prints the library's process warnings (LoraWarning, the Hub client's) as "tslora: warning:"
 * lines in place of Node's default "(node:PID) ..." output and its --trace-warnings hint.
 */
function printWarningsAsLines(): void {
  process.removeAllListeners("warning");
  process.on("warning", (warning) => {
    process.stderr.write(`tslora: warning: ${warning.message}\n`);
  });
}

if (isEntryPoint()) {
  printWarningsAsLines();
  process.exitCode = await main(process.argv.slice(2));
}
