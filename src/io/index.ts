// Public surface of io/: checkpoints, configs, tokenizers, the Hub client and atomic writes.
export * from "./atomic.js";
export * from "./checkpoint.js";
export * from "./config.js";
export * from "./dtypes.js";
export * from "./hub.js";
export * from "./safetensors.js";
export * from "./tokenizer.js";
