import assert from "node:assert/strict";
import { test } from "node:test";
import { addSame, backward, endStep, noGrad, Tensor, zeroGrad } from "../../src/engine/index.js";
import { getArena } from "../../src/engine/memory.js";
import { record } from "../../src/engine/tape.js";
import { checkpoint } from "../../src/train/checkpointing.js";
import { randomArray } from "../helpers/random.js";

// Small ops written here in plain loops, so the test depends only on the tape.
function mulSame(a: Tensor, b: Tensor): Tensor {
  const out = Tensor.empty(a.shape);
  const [x, y, z] = [a.f32(), b.f32(), out.f32()];
  for (let i = 0; i < z.length; i++) z[i] = x[i] * y[i];
  return record(out, "mul", [a, b], (g) => {
    const ga = Tensor.empty(a.shape);
    const gb = Tensor.empty(b.shape);
    const [gv, av, bv] = [g.f32(), a.f32(), b.f32()];
    for (let i = 0; i < gv.length; i++) {
      ga.f32()[i] = gv[i] * bv[i];
      gb.f32()[i] = gv[i] * av[i];
    }
    return [ga, gb];
  });
}

function sumAll(a: Tensor): Tensor {
  const out = Tensor.from([a.f32().reduce((s, v) => s + v, 0)], [1]);
  return record(out, "sum", [a], (g) => [Tensor.full(a.shape, g.item())]);
}

const n = 37;
const layers = 3;

function makeParams(): Tensor[] {
  return Array.from({ length: 2 * layers }, (_, i) =>
    Tensor.from(randomArray(n, 10 + i, 0.5), [n], "f32", { persistent: true, requiresGrad: true }),
  );
}

// One "block": h -> (h + w1) * (h + w2) + h, a residual like a transformer block's.
function block(h: Tensor, w1: Tensor, w2: Tensor): Tensor {
  return addSame(mulSame(addSame(h, w1), addSame(h, w2)), h);
}

function run(x: Tensor, params: Tensor[], useCheckpoint: boolean, calls: { n: number }): number {
  let h = x;
  for (let l = 0; l < layers; l++) {
    const [w1, w2] = [params[2 * l], params[2 * l + 1]];
    const fn = (input: Tensor): Tensor => {
      calls.n++;
      return block(input, w1, w2);
    };
    h = useCheckpoint ? checkpoint(fn, [h], [w1, w2]) : fn(h);
  }
  const loss = sumAll(h);
  const value = loss.item();
  backward(loss);
  return value;
}

function gradients(tensors: Tensor[]): Float32Array[] {
  return tensors.map((t) => t.grad?.f32().slice() ?? new Float32Array(0));
}

for (const inputNeedsGrad of [false, true]) {
  test(`checkpoint gradients equal plain ones (input grad ${inputNeedsGrad})`, () => {
    const params = makeParams();
    const x = Tensor.from(randomArray(n, 1, 0.5), [n], "f32", {
      persistent: true,
      requiresGrad: inputNeedsGrad,
    });
    const plainCalls = { n: 0 };
    const plainLoss = run(x, params, false, plainCalls);
    const plain = gradients([...params, ...(inputNeedsGrad ? [x] : [])]);
    endStep();
    zeroGrad([...params, x]);

    const checkpointCalls = { n: 0 };
    const checkpointLoss = run(x, params, true, checkpointCalls);
    const checkpointed = gradients([...params, ...(inputNeedsGrad ? [x] : [])]);
    endStep();

    assert.equal(checkpointLoss, plainLoss);
    assert.equal(plainCalls.n, layers);
    assert.equal(checkpointCalls.n, 2 * layers, "each block runs once forward, once backward");
    for (let i = 0; i < plain.length; i++) {
      assert.equal(checkpointed[i].length, n, `gradient ${i} is missing`);
      assert.deepEqual(checkpointed[i], plain[i], `gradient ${i} differs`);
    }
  });
}

test("checkpoint records nothing under noGrad", () => {
  const params = makeParams();
  const x = Tensor.from(randomArray(n, 2), [n]);
  let calls = 0;
  const out = noGrad(() =>
    checkpoint(
      (h) => {
        calls++;
        return block(h, params[0], params[1]);
      },
      [x],
      [params[0], params[1]],
    ),
  );
  assert.equal(out.node, null);
  assert.equal(calls, 1);
  endStep();
});

test("checkpoint rewinds through onRecompute", () => {
  const params = makeParams();
  const x = Tensor.from(randomArray(n, 3), [n]);
  let rewinds = 0;
  const out = checkpoint(
    (h) => block(h, params[0], params[1]),
    [x],
    [params[0]],
    () => {
      rewinds++;
    },
  );
  assert.notEqual(out.node, null, "a trainable param makes the segment record a node");
  backward(sumAll(out));
  assert.equal(rewinds, 1);
  assert.ok(params[0].grad !== null, "the listed param received a gradient");
  endStep();
});

test("checkpoint frees the segment's activations", () => {
  const params = makeParams();
  const x = Tensor.from(randomArray(n, 4), [n], "f32", { persistent: true });
  const forward = (useCheckpoint: boolean): number => {
    endStep();
    let h = x;
    for (let l = 0; l < layers; l++) {
      const [w1, w2] = [params[2 * l], params[2 * l + 1]];
      const fn = (input: Tensor): Tensor => block(input, w1, w2);
      h = useCheckpoint ? checkpoint(fn, [h], [w1, w2]) : fn(h);
    }
    const used = getArena().mark().used;
    endStep();
    return used;
  };
  const plain = forward(false);
  const checkpointed = forward(true);
  // Each block allocates 4 tensors; checkpointing keeps only its output.
  assert.equal(checkpointed * 4, plain, `arena bytes: ${checkpointed} vs ${plain}`);
});
