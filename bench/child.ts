// Entry of the child processes that bench/process.ts starts: runs one task given as a JSON
// argument and sends its result to the parent over IPC.
//
// Run by hand to debug a job: node dist/bench/child.js '{"task":"train","options":{...}}'
import { replyAndExit, type ChildTask } from "./process.js";

async function runTask(task: ChildTask): Promise<unknown> {
  switch (task.task) {
    case "train":
      return (await import("./train.js")).measureTraining(task.options);
    case "decode":
      return (await import("./decode.js")).measureDecoding(task.options);
    case "checkpoint":
      return (await import("./random-checkpoint.js")).writeCheckpointTask(task.options);
    default:
      throw new Error(
        `unknown task ${JSON.stringify((task as { task: unknown }).task)}; ` +
          `expected "train", "decode" or "checkpoint"`,
      );
  }
}

async function main(): Promise<void> {
  const argument = process.argv[2];
  if (argument === undefined) {
    replyAndExit({ ok: false, error: "child.js needs one argument: the task as JSON" });
    return;
  }
  try {
    const result = await runTask(JSON.parse(argument) as ChildTask);
    replyAndExit({ ok: true, result });
  } catch (err) {
    const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    replyAndExit({ ok: false, error });
  }
}

await main();
