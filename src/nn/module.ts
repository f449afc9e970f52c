// The module tree. Every module registers its children under the Hugging Face attribute name
// ("model", "layers", "0", "self_attn", "q_proj"), so a parameter's dotted path is exactly its
// key in the checkpoint and loading a model is an identity map.
import type { Tensor } from "../engine/index.js";

export abstract class Module {
  /** Training mode: enables dropout. Set it for the whole tree with train() or eval(). */
  training = false;
  private readonly children = new Map<string, Module>();
  private disposed = false;
  /** Callbacks that dispose() runs to free tensors other code keeps for this module (LoRA). */
  private readonly disposeCallbacks: (() => void)[] = [];

  /** Registers `module` as the child `name` and returns it, so fields can be set in one line. */
  protected addModule<M extends Module>(name: string, module: M): M {
    if (name === "" || name.includes(".")) {
      throw new Error(`Module.addModule: invalid child name "${name}": it must be one path part`);
    }
    this.children.set(name, module);
    return module;
  }

  /** This module's own parameters (not its children's) by local name. Null entries are absent. */
  protected ownParameters(): [string, Tensor | null][] {
    return [];
  }

  /** Replaces the own parameter `name`. Modules with parameters override it. */
  protected setOwnParameter(name: string, _value: Tensor): void {
    throw new Error(`${this.constructor.name}: has no parameter "${name}"`);
  }

  /** Returns the direct children in registration order. */
  namedChildren(): [string, Module][] {
    return [...this.children];
  }

  /**
   * Returns every module below and including this one with its dotted path, in depth-first
   * order. This module itself comes first, with the path `prefix` ("" by default).
   */
  namedModules(prefix = ""): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this.children) {
      out.push(...child.namedModules(joinPath(prefix, name)));
    }
    return out;
  }

  /**
   * Returns every parameter with its full dotted path, e.g.
   * "model.layers.0.self_attn.q_proj.weight". A tensor shared by two modules (tied embeddings)
   * is listed once, under the first path found, as torch's named_parameters() does.
   */
  namedParameters(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [path, module] of this.namedModules(prefix)) {
      for (const [name, tensor] of module.ownParameters()) {
        if (tensor === null || seen.has(tensor)) continue;
        seen.add(tensor);
        out.push([joinPath(path, name), tensor]);
      }
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Returns the module at a dotted path ("" is this module), or throws naming the path. */
  getModule(path: string): Module {
    if (path === "") return this;
    const dot = path.indexOf(".");
    const head = dot < 0 ? path : path.slice(0, dot);
    const child = this.children.get(head);
    if (child === undefined) {
      throw new Error(`Module.getModule: module "${head}" not found in ${this.constructor.name}`);
    }
    return dot < 0 ? child : child.getModule(path.slice(dot + 1));
  }

  /** Replaces the parameter at a dotted path, e.g. when loading weights or casting them. */
  setParameter(path: string, value: Tensor): void {
    const dot = path.lastIndexOf(".");
    const owner = this.getModule(dot < 0 ? "" : path.slice(0, dot));
    owner.setOwnParameter(dot < 0 ? path : path.slice(dot + 1), value);
  }

  /** Sets training mode on this module and every descendant. */
  train(mode = true): this {
    for (const [, module] of this.namedModules()) module.training = mode;
    return this;
  }

  /**
   * Frees every parameter and its gradient, the buffers of every module and the tensors
   * registered with onDispose. The module cannot run afterwards. Calling it again does nothing.
   */
  dispose(): void {
    if (this.disposed) return;
    for (const [, module] of this.namedModules()) module.disposed = true;
    for (const callback of this.disposeCallbacks.splice(0)) callback();
    for (const tensor of this.parameters()) tensor.dispose();
    for (const [, module] of this.namedModules()) module.disposeOwnBuffers();
  }

  /** True after dispose() ran on this module or on a module above it. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Throws if the module was disposed, naming the operation `where` that needed it. */
  throwIfDisposed(where: string): void {
    if (this.disposed) throw new Error(`${where}: the model was disposed; load it again`);
  }

  /**
   * Registers `callback` to run when dispose() is called on this module, for tensors that other
   * code attaches to it (LoRA adapters, for example).
   */
  onDispose(callback: () => void): void {
    this.throwIfDisposed("Module.onDispose");
    this.disposeCallbacks.push(callback);
  }

  /** Frees memory a module keeps outside its parameters. Called by dispose() on every module. */
  protected disposeOwnBuffers(): void {}

  /** Sets inference mode (training = false) on the whole tree. */
  eval(): this {
    return this.train(false);
  }
}

/** An indexed list of modules; its children are named "0", "1", ... as in torch.nn.ModuleList. */
export class ModuleList<M extends Module> extends Module {
  readonly items: readonly M[];

  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.addModule(String(i), m));
  }

  get length(): number {
    return this.items.length;
  }
}

function joinPath(prefix: string, name: string): string {
  return prefix === "" ? name : `${prefix}.${name}`;
}
