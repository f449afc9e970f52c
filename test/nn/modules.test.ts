// The nn modules: Hugging Face parameter paths, the Linear hook and layouts, and the forward
// values of Embedding and the norms against plain loops.
import assert from "node:assert/strict";
import { test } from "node:test";
import { backward, sum, Tensor } from "../../src/engine/index.js";
import { Embedding } from "../../src/nn/embedding.js";
import { Linear, type LinearHook } from "../../src/nn/linear.js";
import { Module, ModuleList } from "../../src/nn/module.js";
import { LayerNorm, RMSNorm } from "../../src/nn/norm.js";
import { assertClose } from "../helpers/assert.js";
import { randomArray } from "../helpers/random.js";

class Block extends Module {
  readonly proj: Linear;
  readonly norm: RMSNorm;
  constructor() {
    super();
    this.proj = this.addModule("q_proj", new Linear(4, 3, { bias: false }));
    this.norm = this.addModule("input_layernorm", new RMSNorm(4, 1e-6));
  }
}

class Tree extends Module {
  readonly embed: Embedding;
  readonly layers: ModuleList<Block>;
  constructor() {
    super();
    this.embed = this.addModule("embed_tokens", new Embedding(10, 4));
    this.layers = this.addModule("layers", new ModuleList([new Block(), new Block()]));
  }
}

test("parameters carry dotted paths", () => {
  const names = new Tree().namedParameters("model").map(([name]) => name);
  assert.deepEqual(names, [
    "model.embed_tokens.weight",
    "model.layers.0.q_proj.weight",
    "model.layers.0.input_layernorm.weight",
    "model.layers.1.q_proj.weight",
    "model.layers.1.input_layernorm.weight",
  ]);
});

test("modules carry dotted paths", () => {
  const paths = new Tree().namedModules().map(([path]) => path);
  assert.deepEqual(paths, [
    "",
    "embed_tokens",
    "layers",
    "layers.0",
    "layers.0.q_proj",
    "layers.0.input_layernorm",
    "layers.1",
    "layers.1.q_proj",
    "layers.1.input_layernorm",
  ]);
});

test("shared tensor is listed once", () => {
  const tree = new Tree();
  tree.layers.items[1].proj.weight = tree.layers.items[0].proj.weight;
  const names = tree.namedParameters().map(([name]) => name);
  assert.ok(names.includes("layers.0.q_proj.weight"));
  assert.ok(!names.includes("layers.1.q_proj.weight"));
});

test("getModule and setParameter by path", () => {
  const tree = new Tree();
  assert.equal(tree.getModule("layers.1.q_proj"), tree.layers.items[1].proj);
  assert.throws(() => tree.getModule("layers.7"), /module "7" not found/);
  const replacement = Tensor.zeros([3, 4], "f32", { persistent: true });
  tree.setParameter("layers.1.q_proj.weight", replacement);
  assert.equal(tree.layers.items[1].proj.weight, replacement);
  assert.throws(
    () =>
      tree.setParameter(
        "layers.1.q_proj.weight",
        Tensor.zeros([4, 3], "f32", { persistent: true }),
      ),
    /must have shape \[3, 4\], got \[4, 3\]/,
  );
  assert.throws(
    () => tree.setParameter("layers.1.q_proj.bias", replacement),
    /no parameter "bias"/,
  );
});

test("dispose frees every parameter", () => {
  const tree = new Tree();
  const params = tree.parameters();
  tree.dispose();
  for (const tensor of params) assert.throws(() => tensor.f32(), /was disposed/);
});

test("train and eval set the whole tree", () => {
  const tree = new Tree();
  assert.equal(tree.layers.items[0].proj.training, false);
  tree.train();
  assert.ok(tree.namedModules().every(([, m]) => m.training));
  tree.eval();
  assert.ok(tree.namedModules().every(([, m]) => !m.training));
});

/** y[r][o] = sum_i x[r][i] * w(o, i) + b[o]. */
function linearRef(
  x: Float32Array,
  w: (o: number, i: number) => number,
  b: Float32Array | null,
  rows: number,
  inF: number,
  outF: number,
): Float32Array {
  const y = new Float32Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let s = b === null ? 0 : b[o];
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w(o, i);
      y[r * outF + o] = s;
    }
  }
  return y;
}

test("linear layouts outIn and inOut", () => {
  const [inF, outF, rows] = [5, 3, 4];
  const x = randomArray(rows * inF, 1);
  const w = randomArray(inF * outF, 2);
  const b = randomArray(outF, 3);
  for (const layout of ["outIn", "inOut"] as const) {
    const layer = new Linear(inF, outF, { layout });
    layer.weight.f32().set(w);
    layer.bias?.f32().set(b);
    assert.deepEqual(layer.weight.shape, layout === "outIn" ? [outF, inF] : [inF, outF]);
    const at =
      layout === "outIn"
        ? (o: number, i: number) => w[o * inF + i]
        : (o: number, i: number) => w[i * outF + o];
    const y = layer.forward(Tensor.from(x, [2, 2, inF]));
    assert.deepEqual(y.shape, [2, 2, outF]);
    assertClose(y.f32(), linearRef(x, at, b, rows, inF, outF), { atol: 1e-6, what: layout });
  }
});

test("linear hook wraps the output", () => {
  const layer = new Linear(2, 2, { bias: false });
  layer.weight.f32().set([1, 0, 0, 1]);
  const calls: number[][] = [];
  const hook: LinearHook = {
    forward: (x, base) => {
      calls.push([...x.f32(), ...base.f32()]);
      return Tensor.from([9, 9], [1, 2]);
    },
  };
  layer.hook = hook;
  const y = layer.forward(Tensor.from([3, 4], [1, 2]));
  assert.deepEqual(Array.from(y.f32()), [9, 9]);
  assert.deepEqual(calls, [[3, 4, 3, 4]]);
});

test("frozen linear passes gradient to input", () => {
  const layer = new Linear(3, 2);
  layer.weight.f32().set([1, 2, 3, 4, 5, 6]);
  const x = Tensor.from([1, 1, 1], [1, 3], "f32", { persistent: true, requiresGrad: true });
  backward(sum(layer.forward(x)));
  assert.deepEqual(Array.from(x.grad?.f32() ?? []), [5, 7, 9]);
  assert.equal(layer.weight.grad, null);
});

test("embedding gathers rows", () => {
  const table = new Embedding(4, 2, "bf16");
  assert.equal(table.weight.dtype, "bf16");
  const f32 = new Embedding(4, 2);
  f32.weight.f32().set([0, 1, 2, 3, 4, 5, 6, 7]);
  const out = f32.forward(Tensor.from(Int32Array.from([3, 0, 3]), [3], "i32"));
  assert.deepEqual(out.shape, [3, 2]);
  assert.deepEqual(Array.from(out.f32()), [6, 7, 0, 1, 6, 7]);
});

test("norms match plain loops", () => {
  const c = 6;
  const x = randomArray(2 * c, 4, 3);
  const rms = new RMSNorm(c, 1e-6);
  assert.deepEqual(Array.from(rms.weight.f32()), Array(c).fill(1));
  rms.weight.f32().set(randomArray(c, 5));
  const ln = new LayerNorm(c, 1e-5);
  assert.deepEqual(Array.from(ln.bias.f32()), Array(c).fill(0));
  ln.weight.f32().set(randomArray(c, 6));
  ln.bias.f32().set(randomArray(c, 7));
  const yRms = rms.forward(Tensor.from(x, [2, c])).f32();
  const yLn = ln.forward(Tensor.from(x, [2, c])).f32();
  for (let r = 0; r < 2; r++) {
    const row = Array.from(x.subarray(r * c, (r + 1) * c));
    const ms = row.reduce((s, v) => s + v * v, 0) / c;
    const mean = row.reduce((s, v) => s + v, 0) / c;
    const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / c;
    const w = rms.weight.f32();
    const expectRms = row.map((v, i) => (v / Math.sqrt(ms + 1e-6)) * w[i]);
    const expectLn = row.map(
      (v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * ln.weight.f32()[i] + ln.bias.f32()[i],
    );
    assertClose(yRms.subarray(r * c, (r + 1) * c), expectRms, { atol: 1e-5, what: "rmsNorm" });
    assertClose(yLn.subarray(r * c, (r + 1) * c), expectLn, { atol: 1e-5, what: "layerNorm" });
  }
});
