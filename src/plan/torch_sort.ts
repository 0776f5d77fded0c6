/**
 * `tensor.sort(descending=True)` on CPU as torch does it when `stable=False` and x86-simd-sort is not used:
 * libstdc++'s `std::sort` (introsort: median-of-three quicksort down to 16 elements, heapsort past the depth
 * limit, then one insertion sort) over (value, index) pairs compared by value only. Ties therefore land in an
 * order that depends on the data; EPLB's outputs depend on it, so the port reproduces it step by step.
 * Rows of ≤ 16 entries reduce to insertion sort, which is stable.
 * PyTorch builds that route float sorts through x86-simd-sort (AVX2/AVX-512, PyTorch ≥ 2.5) may order ties
 * differently; loads and balancedness do not depend on the tie order.
 */

const THRESHOLD = 16;

/** Indices of `values` in the order torch's unstable descending CPU sort returns them. */
export function argsortDescTorchCpu(values: ArrayLike<number>): Int32Array {
  const n = values.length;
  const v = Float64Array.from(values);
  const ix = new Int32Array(n);
  for (let i = 0; i < n; i++) ix[i] = i;
  if (n < 2) return ix;
  // comp(a, b) = "a goes before b" = v[a] > v[b] (KeyValueCompDesc; NaN is rejected upstream)
  const swap = (a: number, b: number): void => {
    const tv = v[a]; v[a] = v[b]; v[b] = tv;
    const ti = ix[a]; ix[a] = ix[b]; ix[b] = ti;
  };

  const unguardedLinearInsert = (last: number): void => {
    const val = v[last], vi = ix[last];
    let next = last - 1;
    while (val > v[next]) { v[last] = v[next]; ix[last] = ix[next]; last = next; next--; }
    v[last] = val; ix[last] = vi;
  };
  const insertionSort = (first: number, last: number): void => {
    for (let i = first + 1; i < last; i++) {
      if (v[i] > v[first]) {
        const val = v[i], vi = ix[i];
        for (let j = i; j > first; j--) { v[j] = v[j - 1]; ix[j] = ix[j - 1]; }
        v[first] = val; ix[first] = vi;
      } else unguardedLinearInsert(i);
    }
  };
  const pushHeap = (first: number, hole: number, top: number, val: number, vi: number): void => {
    let parent = Math.trunc((hole - 1) / 2);
    while (hole > top && v[first + parent] > val) {
      v[first + hole] = v[first + parent]; ix[first + hole] = ix[first + parent];
      hole = parent;
      parent = Math.trunc((hole - 1) / 2);
    }
    v[first + hole] = val; ix[first + hole] = vi;
  };
  const adjustHeap = (first: number, hole: number, len: number, val: number, vi: number): void => {
    const top = hole;
    let child = hole;
    while (child < Math.floor((len - 1) / 2)) {
      child = 2 * (child + 1);
      if (v[first + child] > v[first + child - 1]) child--;
      v[first + hole] = v[first + child]; ix[first + hole] = ix[first + child];
      hole = child;
    }
    if ((len & 1) === 0 && child === Math.floor((len - 2) / 2)) {
      child = 2 * (child + 1);
      v[first + hole] = v[first + child - 1]; ix[first + hole] = ix[first + child - 1];
      hole = child - 1;
    }
    pushHeap(first, hole, top, val, vi);
  };
  const heapSort = (first: number, last: number): void => {
    const len = last - first;
    for (let parent = Math.floor((len - 2) / 2); parent >= 0; parent--) adjustHeap(first, parent, len, v[first + parent], ix[first + parent]);
    while (last - first > 1) {
      last--;
      const val = v[last], vi = ix[last];
      v[last] = v[first]; ix[last] = ix[first];
      adjustHeap(first, 0, last - first, val, vi);
    }
  };
  const moveMedianToFirst = (result: number, a: number, b: number, c: number): void => {
    if (v[a] > v[b]) {
      if (v[b] > v[c]) swap(result, b);
      else if (v[a] > v[c]) swap(result, c);
      else swap(result, a);
    } else if (v[a] > v[c]) swap(result, a);
    else if (v[b] > v[c]) swap(result, c);
    else swap(result, b);
  };
  const unguardedPartition = (first: number, last: number, pivot: number): number => {
    for (;;) {
      while (v[first] > v[pivot]) first++;
      last--;
      while (v[pivot] > v[last]) last--;
      if (!(first < last)) return first;
      swap(first, last);
      first++;
    }
  };
  const introsortLoop = (first: number, last: number, depth: number): void => {
    while (last - first > THRESHOLD) {
      if (depth === 0) { heapSort(first, last); return; }
      depth--;
      const mid = first + Math.floor((last - first) / 2);
      moveMedianToFirst(first, first + 1, mid, last - 1);
      const cut = unguardedPartition(first + 1, last, first);
      introsortLoop(cut, last, depth);
      last = cut;
    }
  };

  introsortLoop(0, n, 2 * (31 - Math.clz32(n))); // depth limit 2·⌊log2 n⌋
  if (n > THRESHOLD) {
    insertionSort(0, THRESHOLD);
    for (let i = THRESHOLD; i < n; i++) unguardedLinearInsert(i);
  } else insertionSort(0, n);
  return ix;
}
