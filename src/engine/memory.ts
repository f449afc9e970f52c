// The allocator for the shared wasm memory. Offsets are bytes from the start of the memory, and
// every block is 64-byte aligned so SIMD kernels can read whole cache lines.
//
// Two regions share the memory:
// - persistent blocks (weights, adapters, optimizer state) from a first-fit free list that
//   coalesces neighbours when a block is freed;
// - the per-step arena, a list of large chunks taken from the same free list, filled by bumping a
//   pointer and reset after each step. Chunks are kept for the next step, so a training loop
//   reaches a flat resident size after its first step.
import { getRuntime, MAX_PAGES, PAGE_BYTES } from "../kernels/runtime.js";

export const ALIGN = 64;
const ARENA_CHUNK_BYTES = 16 * 1024 * 1024;

function alignUp(n: number, a = ALIGN): number {
  return Math.ceil(n / a) * a;
}

function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

interface FreeBlock {
  offset: number;
  size: number;
}

/** The free-list heap over [base, top) of the shared memory; it grows the memory on demand. */
export class Heap {
  private readonly memory: WebAssembly.Memory;
  private readonly base: number;
  private top: number;
  private free: FreeBlock[] = [];
  private readonly sizes = new Map<number, number>();
  private used = 0;
  private peak = 0;

  constructor(memory: WebAssembly.Memory, base: number) {
    this.memory = memory;
    this.base = alignUp(base);
    this.top = this.base;
  }

  /** Bytes currently allocated. */
  get bytesInUse(): number {
    return this.used;
  }

  /** Largest bytesInUse seen so far. */
  get peakBytes(): number {
    return this.peak;
  }

  /** Starts a new peakBytes measurement from the bytes in use now. */
  resetPeak(): void {
    this.peak = this.used;
  }

  /** Size of the wasm memory in bytes. */
  get memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  /**
   * Allocates `bytes` (rounded up to 64) and returns the offset. Contents are not cleared. The
   * smallest free block that fits is used (best fit), so large holes stay whole for large
   * tensors and the memory's high-water mark stays close to the bytes in use.
   */
  alloc(bytes: number): number {
    const size = alignUp(Math.max(bytes, 1));
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const blockSize = this.free[i].size;
      if (blockSize < size || (best >= 0 && blockSize >= this.free[best].size)) continue;
      best = i;
      if (blockSize === size) break;
    }
    if (best >= 0) {
      const block = this.free[best];
      const offset = block.offset;
      if (block.size === size) this.free.splice(best, 1);
      else {
        block.offset += size;
        block.size -= size;
      }
      return this.track(offset, size);
    }
    const offset = this.top;
    this.ensureCapacity(offset + size, bytes);
    this.top = offset + size;
    return this.track(offset, size);
  }

  /** Returns a block from alloc() to the free list. */
  release(offset: number): void {
    const size = this.sizes.get(offset);
    if (size === undefined)
      throw new Error(`Heap.release: offset ${offset} is not an allocated block`);
    this.sizes.delete(offset);
    this.used -= size;
    this.insertFree(offset, size);
  }

  private track(offset: number, size: number): number {
    this.sizes.set(offset, size);
    this.used += size;
    this.peak = Math.max(this.peak, this.used);
    return offset;
  }

  private insertFree(offset: number, size: number): void {
    const free = this.free;
    let lo = 0;
    let hi = free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (free[mid].offset < offset) lo = mid + 1;
      else hi = mid;
    }
    free.splice(lo, 0, { offset, size });
    // Merge with the next block, then with the previous one.
    if (lo + 1 < free.length && offset + size === free[lo + 1].offset) {
      free[lo].size += free[lo + 1].size;
      free.splice(lo + 1, 1);
    }
    if (lo > 0 && free[lo - 1].offset + free[lo - 1].size === offset) {
      free[lo - 1].size += free[lo].size;
      free.splice(lo, 1);
      lo--;
    }
    // A free block at the top goes back to the unallocated tail.
    const last = free[free.length - 1];
    if (last.offset + last.size === this.top) {
      this.top = last.offset;
      free.pop();
    }
  }

  private ensureCapacity(end: number, requested: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / PAGE_BYTES);
    const currentPages = have / PAGE_BYTES;
    if (currentPages + pages > MAX_PAGES) {
      throw new Error(
        `out of wasm memory: requested ${formatBytes(requested)} with ${formatBytes(this.used)} ` +
          `in use, and wasm32 memory ends at 4 GiB. Load frozen weights as bf16 ` +
          `(or quantize them), or use a smaller batch or sequence length.`,
      );
    }
    // Grow in steps of at least 1/8 of the current size so that growth is rare.
    const step = Math.min(MAX_PAGES - currentPages, Math.max(pages, Math.ceil(currentPages / 8)));
    this.memory.grow(step);
  }
}

interface ArenaChunk {
  offset: number;
  size: number;
}

/** A position in the arena returned by mark() and accepted by release(). */
export interface ArenaMark {
  chunk: number;
  used: number;
}

/** The per-step bump allocator. reset() makes every block allocated since the last reset free. */
export class Arena {
  private readonly heap: Heap;
  private chunks: ArenaChunk[] = [];
  private current = 0;
  private used = 0;

  constructor(heap: Heap) {
    this.heap = heap;
  }

  alloc(bytes: number): number {
    const size = alignUp(Math.max(bytes, 1));
    for (;;) {
      const chunk = this.chunks[this.current];
      if (chunk === undefined) break;
      if (this.used + size <= chunk.size) {
        const offset = chunk.offset + this.used;
        this.used += size;
        return offset;
      }
      // Too small: move on to the next chunk, or replace an empty chunk that cannot fit.
      if (this.used === 0) {
        this.heap.release(chunk.offset);
        this.chunks.splice(this.current, 1);
        continue;
      }
      this.current++;
      this.used = 0;
    }
    const chunkSize = Math.max(ARENA_CHUNK_BYTES, size);
    const offset = this.heap.alloc(chunkSize);
    this.chunks.push({ offset, size: chunkSize });
    this.current = this.chunks.length - 1;
    this.used = size;
    return offset;
  }

  mark(): ArenaMark {
    return { chunk: this.current, used: this.used };
  }

  /** Frees every block allocated after `mark`. */
  release(mark: ArenaMark): void {
    this.current = mark.chunk;
    this.used = mark.used;
  }

  reset(): void {
    this.current = 0;
    this.used = 0;
  }

  /** Bytes held by the arena's chunks. */
  get reservedBytes(): number {
    return this.chunks.reduce((sum, c) => sum + c.size, 0);
  }

  /** Bytes of the chunks allocated since the last reset. */
  get usedBytes(): number {
    let used = this.used;
    for (let i = 0; i < this.current && i < this.chunks.length; i++) used += this.chunks[i].size;
    return used;
  }

  /** Returns every chunk to the heap. */
  dispose(): void {
    for (const chunk of this.chunks) this.heap.release(chunk.offset);
    this.chunks = [];
    this.reset();
  }
}

let heap: Heap | null = null;
let arena: Arena | null = null;

export function getHeap(): Heap {
  if (!heap) {
    const rt = getRuntime();
    heap = new Heap(rt.memory, rt.heapBase);
  }
  return heap;
}

export function getArena(): Arena {
  if (!arena) arena = new Arena(getHeap());
  return arena;
}
