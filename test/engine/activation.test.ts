import assert from "node:assert/strict";
import { test } from "node:test";
import { add, backward, gelu, mul, silu, sum, swiglu, Tensor } from "../../src/engine/index.js";
import { setThreads } from "../../src/kernels/pool.js";
import {
  geluErfGradRef,
  geluErfRef,
  geluTanhGradRef,
  geluTanhRef,
  mapRef,
  siluGradRef,
  siluRef,
  swigluRef,
} from "../../src/kernels/reference/activation.js";
import { assertClose } from "../helpers/assert.js";
import { gradcheck } from "../helpers/gradcheck.js";
import { randomArray } from "../helpers/random.js";

type Unary = (x: Tensor) => Tensor;

const UNARY: { name: string; op: Unary; f: (v: number) => number; df: (v: number) => number }[] = [
  { name: "gelu tanh", op: (x) => gelu(x, "tanh"), f: geluTanhRef, df: geluTanhGradRef },
  { name: "gelu erf", op: (x) => gelu(x, "none"), f: geluErfRef, df: geluErfGradRef },
  { name: "silu", op: silu, f: siluRef, df: siluGradRef },
];

// Large magnitudes where exp overflows or x^2 and x^3 overflow in f32.
const EXTREMES = [
  0, -0, 1e-30, -1e-30, 5, -5, 9.5, -9.5, 15, -15, 40, -40, 88, -88, 90, -90, 1e4, -1e4, 1e13,
  -1e13, 3e38, -3e38,
];

function unaryGradient(op: Unary, x: Float32Array): Float32Array {
  const t = Tensor.from(x, [x.length], "f32", { persistent: true, requiresGrad: true });
  backward(op(t), Tensor.full([x.length], 1));
  const grad = t.grad?.f32().slice() ?? new Float32Array();
  t.dispose();
  return grad;
}

test("activations match reference on odd sizes", () => {
  for (const { name, op, f } of UNARY) {
    for (const n of [1, 3, 17, 127, 1000]) {
      const x = randomArray(n, n, 6);
      const expected = new Float64Array(n);
      mapRef(x, f, expected);
      const out = op(Tensor.from(x, [n]));
      assertClose(out.f32(), expected, { atol: 1e-6, rtol: 1e-5, what: `${name} n=${n}` });
    }
  }
});

test("activation gradients match finite differences", () => {
  for (const { name, op, f } of UNARY) {
    gradcheck(
      ([x]) => op(x),
      ([x]) => x.map(f),
      [{ data: randomArray(127, 3, 5), shape: [127] }],
      {
        what: name,
      },
    );
  }
});

test("activations stay finite at extreme inputs", () => {
  const x = Float32Array.from(EXTREMES);
  for (const { name, op, f, df } of UNARY) {
    const out = op(Tensor.from(x, [x.length])).f32();
    const grad = unaryGradient(op, x);
    const expected = Array.from(x, f);
    const expectedGrad = Array.from(x, df);
    for (let i = 0; i < x.length; i++) {
      assert.ok(Number.isFinite(out[i]), `${name}(${x[i]}) = ${out[i]}`);
      assert.ok(Number.isFinite(grad[i]), `${name}'(${x[i]}) = ${grad[i]}`);
    }
    assertClose(out, expected, { atol: 1e-6, rtol: 1e-5, what: `${name} extremes` });
    // The f64 derivative formulas themselves overflow beyond 1e100, so compare moderate inputs.
    const moderate = (v: number): boolean => Math.abs(v) < 1e6;
    assertClose(
      grad.filter((_, i) => moderate(x[i])),
      expectedGrad.filter((_, i) => moderate(x[i])),
      { atol: 1e-6, rtol: 1e-5, what: `${name} gradient extremes` },
    );
  }
});

test("activations propagate NaN", () => {
  const x = Float32Array.from([NaN, 1, NaN, -1, NaN]);
  for (const { name, op } of UNARY) {
    const out = op(Tensor.from(x, [5])).f32();
    const grad = unaryGradient(op, x);
    for (const i of [0, 2, 4]) {
      assert.ok(Number.isNaN(out[i]), `${name}(NaN) = ${out[i]}`);
      assert.ok(Number.isNaN(grad[i]), `${name}'(NaN) = ${grad[i]}`);
    }
  }
});

test("swiglu matches reference and gradients", () => {
  for (const n of [1, 3, 17, 127]) {
    const gate = randomArray(n, n, 6);
    const up = randomArray(n, n + 1, 2);
    const expected = new Float64Array(n);
    swigluRef(gate, up, expected);
    const out = swiglu(Tensor.from(gate, [n]), Tensor.from(up, [n]));
    assertClose(out.f32(), expected, { atol: 1e-6, rtol: 1e-5, what: `swiglu n=${n}` });
  }
  gradcheck(
    ([g, u]) => swiglu(g, u),
    ([g, u]) => {
      const out = new Float64Array(g.length);
      swigluRef(g, u, out);
      return out;
    },
    [
      { data: randomArray(51, 1, 5), shape: [3, 17] },
      { data: randomArray(51, 2, 2), shape: [3, 17] },
    ],
  );
  gradcheck(
    ([g, u]) => swiglu(g, u),
    ([g, u]) => {
      const out = new Float64Array(g.length);
      swigluRef(g, u, out);
      return out;
    },
    [
      { data: randomArray(17, 3, 5), shape: [17], requiresGrad: false },
      { data: randomArray(17, 4, 2), shape: [17] },
    ],
    { what: "swiglu frozen gate" },
  );
  assert.throws(
    () => swiglu(Tensor.zeros([2, 3]), Tensor.zeros([3, 2])),
    /swiglu: shapes \[2, 3\] and \[3, 2\] do not match/,
  );
});

test("activations are bitwise equal on 1 and 2 threads", () => {
  const n = 100003;
  const x = randomArray(n, 21, 8);
  const up = Tensor.from(randomArray(n, 22), [n]);
  const results: Float32Array[][] = [];
  for (const threads of [1, 2]) {
    setThreads(threads);
    const row: Float32Array[] = [];
    for (const { op } of UNARY) {
      row.push(
        op(Tensor.from(x, [n]))
          .f32()
          .slice(),
        unaryGradient(op, x),
      );
    }
    row.push(
      swiglu(Tensor.from(x, [n]), up)
        .f32()
        .slice(),
    );
    results.push(row);
  }
  setThreads(1);
  assert.deepEqual(results[1], results[0]);
});

// An activation's backward writes its input's gradient over the gradient it receives when the
// tape reports that no other op reads that one. Here that is mul's fresh gradient, or the one
// add passes to its first input. add gives its second input a copy.
test("activation gradients are right when backward reuses the received gradient", () => {
  const n = 37;
  const xs = randomArray(n, 11, 3);
  const ws = randomArray(n, 12, 2);
  const pairs: [string, Unary, (v: number) => number, Unary, (v: number) => number][] = [
    ["gelu + silu", (x) => gelu(x, "tanh"), geluTanhGradRef, silu, siluGradRef],
    ["silu + gelu erf", silu, siluGradRef, (x) => gelu(x, "none"), geluErfGradRef],
  ];
  for (const [name, first, dFirst, second, dSecond] of pairs) {
    for (const shared of [false, true]) {
      const x = Tensor.from(xs, [n], "f32", { persistent: true, requiresGrad: true });
      const w = Tensor.from(ws, [n]);
      // mul(x, 1) gives the activations an input with a node. mul(out, w) gives them a
      // gradient that the tape owns.
      const h = mul(x, Tensor.full([n], 1));
      const out = shared ? add(first(h), second(h)) : first(h);
      backward(sum(mul(out, w)));
      const expected = Float64Array.from(xs, (v, i) =>
        shared ? ws[i] * (dFirst(v) + dSecond(v)) : ws[i] * dFirst(v),
      );
      assertClose(x.grad?.f32() ?? new Float32Array(), expected, {
        atol: 1e-6,
        rtol: 1e-5,
        what: `${name}${shared ? ", both through add" : ""}`,
      });
      x.dispose();
    }
  }
});

test("swiglu backward writes dgate over a gradient it alone reads", () => {
  const n = 29;
  const gates = randomArray(n, 21, 3);
  const ups = randomArray(n, 22, 2);
  const ws = randomArray(n, 23, 2);
  const gate = Tensor.from(gates, [n], "f32", { persistent: true, requiresGrad: true });
  const up = Tensor.from(ups, [n], "f32", { persistent: true, requiresGrad: true });
  const ones = Tensor.full([n], 1);
  backward(sum(mul(swiglu(mul(gate, ones), mul(up, ones)), Tensor.from(ws, [n]))));
  const dGate = Float64Array.from(gates, (v, i) => ws[i] * ups[i] * siluGradRef(v));
  const dUp = Float64Array.from(gates, (v, i) => ws[i] * siluRef(v));
  assertClose(gate.grad?.f32() ?? new Float32Array(), dGate, {
    atol: 1e-6,
    rtol: 1e-5,
    what: "dgate",
  });
  assertClose(up.grad?.f32() ?? new Float32Array(), dUp, { atol: 1e-6, rtol: 1e-5, what: "dup" });
  gate.dispose();
  up.dispose();
});
