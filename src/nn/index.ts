// The nn layer: modules whose parameter paths are Hugging Face weight names.
export { Module, ModuleList } from "./module.js";
export { Linear, type LinearHook, type LinearLayout, type LinearOptions } from "./linear.js";
export { Embedding } from "./embedding.js";
export { LayerNorm, RMSNorm } from "./norm.js";
export { newParameter, type WeightDType } from "./param.js";
