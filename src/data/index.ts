// The data pipeline: readers (SQuAD JSON, JSONL, Parquet, Hub datasets), prompt templates,
// tokenization into masked examples, the grouped validation split and padded batches.
export * from "./batches.js";
export * from "./chat.js";
export * from "./hub-dataset.js";
export * from "./jsonl.js";
export * from "./load.js";
export * from "./parquet.js";
export * from "./random.js";
export * from "./split.js";
export * from "./squad.js";
export * from "./template.js";
export * from "./tokenize.js";
export * from "./types.js";
