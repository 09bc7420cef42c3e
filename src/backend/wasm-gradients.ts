/**
 * Kernels that make the wasm fallback backend train CNNs: the ones
 * @tensorflow/tfjs-backend-wasm 4.22 lacks, and replacements for ones it gets wrong or runs
 * slowly, registered for the 'wasm' backend only.
 *
 * Missing there (tfjs-core's gradients call them):
 *   Conv2DBackpropFilter                 conv2d's filter gradient: every conv layer
 *   DepthwiseConv2dNativeBackpropFilter  depthwise conv's filter gradient
 *   DepthwiseConv2dNativeBackpropInput   depthwise conv's input gradient
 *   UnsortedSegmentSum                   gather's gradient: embedding layers
 * Replaced:
 *   MaxPoolGrad          wrong: a window whose maximum is <= 0 sends its gradient to the
 *                        window's first element instead of the maximum (the cpu and
 *                        tensorflow backends agree with each other, not with it). Harmless
 *                        right after a relu (such windows are all zeros), wrong elsewhere.
 *   Conv2DBackpropInput  slow: a plain loop, 100 ms for the bench CNN's second conv
 *                        (batch 64, 14x14x32 -> 64) against 16 ms here.
 *   BatchMatMul          slow with transposeA/transposeB (every dense and matmul backward
 *                        pass): 15 ms against 2 ms for [64, 3136]^T x [64, 128].
 * Everything else a small CNN, attention and layer norm train with is there and agrees with
 * the cpu backend (test/wasm-training.test.ts, test/cross-backend.test.ts): Conv2D, MaxPool,
 * AvgPool/AvgPoolGrad, Softmax, Mean/Sum, Rsqrt, Step (relu's gradient), element-wise ops.
 *
 * Design choices:
 * - Kernels, not gradients: tfjs-core's own gradient functions call these kernel names, so
 *   the gradient maths stays tfjs's and the new code is a few forward computations.
 *   They are registered with `backendName: 'wasm'`; no other backend sees them.
 * - A missing kernel is registered only where the wasm backend has none under that name (a
 *   later tfjs-backend-wasm with its own keeps it); a replaced one is swapped only while
 *   the registered one is not ours, keeping the original's setup hook. A second call is a
 *   no-op. Replacing by name means a future fix upstream is not picked up by itself: the
 *   tests compare against the cpu backend, so dropping a replacement is a measured choice.
 * - The convolution gradients are im2col / col2im in JavaScript plus the backend's own
 *   XNNPACK matmul, always on untransposed operands (XNNPACK is ~10x slower on transposed
 *   ones):
 *     dW[KH*KW*CI, CO] = colsT[KH*KW*CI, B*OH*OW] . dy[B*OH*OW, CO]
 *     dx = col2im(dy[B*OH*OW, CO] . W^T[CO, KH*KW*CI])
 *   JavaScript writes colsT straight into the wasm heap and scatters the product back from
 *   it. Cost: one JavaScript pass over KH*KW copies of the input, 4*KH*KW*CI*B*OH*OW bytes of
 *   scratch (the batch is split into chunks to keep that under COLS_CHUNK_FLOATS), and one
 *   matmul of the forward convolution's FLOPs at XNNPACK speed, summed in float32 like
 *   every fast backend. For the bench CNN's second conv each gradient takes about 16 ms
 *   (10 ms matmul, 6 ms JavaScript); its forward Conv2D takes 10 ms.
 * - The depthwise kernels, MaxPoolGrad and UnsortedSegmentSum are plain loops over views
 *   of the wasm heap: they cost their operation count at JavaScript speed (a few hundred
 *   million multiply-adds per second), which suits their low arithmetic intensity.
 * - Heap views go stale when the wasm memory grows, which any allocation may do: kernels
 *   allocate first and take views after, and take them again after each matmul.
 * - Supported: NHWC, float32, any strides, 'same' / 'valid' / numeric / explicit padding
 *   with dimRoundingMode, dilations where the kernel has that attribute (the depthwise
 *   ones; tfjs's Conv2DBackprop* and MaxPoolGrad have none). Anything else throws a clear
 *   Error: the wasm Conv2D forward itself has no NCHW.
 */
// Part of the backend layer: it imports tfjs directly (not through ./backend, which imports
// this module), because tslab's module loader cannot follow an import cycle.
import * as tf from "@tensorflow/tfjs";

/** Largest im2col scratch buffer, in floats (64 MiB); larger batches are split into chunks. */
const COLS_CHUNK_FLOATS = 1 << 24;

/** The kernels this module registers for 'wasm'. */
export const WASM_TRAINING_KERNELS = [
  "BatchMatMul",
  "Conv2DBackpropFilter",
  "Conv2DBackpropInput",
  "DepthwiseConv2dNativeBackpropFilter",
  "DepthwiseConv2dNativeBackpropInput",
  "UnsortedSegmentSum",
  "MaxPoolGrad",
] as const;

/** Those of WASM_TRAINING_KERNELS that tfjs-backend-wasm 4.22 has but computes wrongly or slowly. */
const REPLACED_KERNELS: ReadonlySet<string> = new Set(["BatchMatMul", "Conv2DBackpropInput", "MaxPoolGrad"]);

/** The wasm backend's own configs of the kernels replaced here (BatchMatMul delegates to its own). */
const replacedOriginals = new Map<string, tf.KernelConfig>();

/** The part of tfjs-backend-wasm's BackendWasm these kernels use (public methods of the class). */
interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): tf.TypedArray;
  disposeData(dataId: object): boolean;
}

type Shape4 = [number, number, number, number];
type KernelArgs = Parameters<tf.KernelFunc>[0];

function wasmBackend(backend: unknown, kernel: string): WasmHeapBackend {
  const b = backend as Partial<WasmHeapBackend> | null;
  if (!b || typeof b.makeOutput !== "function" || typeof b.typedArrayFromHeap !== "function" || typeof b.disposeData !== "function") {
    throw new Error(
      `${kernel} (src/backend/wasm-gradients.ts) ran on a backend without the wasm heap API (makeOutput, typedArrayFromHeap, disposeData): ` +
        "these kernels are for @tensorflow/tfjs-backend-wasm 4.x only; check the installed version.",
    );
  }
  return b as WasmHeapBackend;
}

function floatView(backend: WasmHeapBackend, info: tf.TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

function requireFloat32(kernel: string, infos: Record<string, tf.TensorInfo>): void {
  for (const [name, info] of Object.entries(infos)) {
    if (info.dtype !== "float32") {
      throw new Error(`${kernel} on wasm: ${name} has dtype ${info.dtype}; only float32 is supported. Cast it with tf.cast(x, 'float32').`);
    }
  }
}

function requireRank4(kernel: string, name: string, shape: readonly number[]): Shape4 {
  if (shape.length !== 4) {
    throw new Error(`${kernel} on wasm: ${name} must be rank 4 [batch, height, width, channels], got shape [${shape}].`);
  }
  return shape as Shape4;
}

function requireNHWC(kernel: string, dataFormat: unknown): void {
  if (dataFormat !== undefined && dataFormat !== "NHWC") {
    throw new Error(
      `${kernel} on wasm: dataFormat '${String(dataFormat)}' is not supported (the wasm backend's Conv2D has only NHWC). ` +
        "Transpose the input to NHWC, or use the tensorflow or cpu backend.",
    );
  }
}

function requireSameShape(kernel: string, name: string, got: readonly number[], want: readonly number[]): void {
  if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
    throw new Error(`${kernel} on wasm: ${name} has shape [${got}] but the convolution's output shape is [${want}].`);
  }
}

type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;
type ConvAttrs = Pick<tf.Conv2DAttrs, "strides" | "pad" | "dimRoundingMode"> & { dilations?: tf.Conv2DAttrs["dilations"] };

function convInfoFor(inShape: Shape4, filterShape: Shape4, attrs: ConvAttrs, depthwise: boolean): Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    inShape,
    filterShape,
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    depthwise,
    "channelsLast",
  );
}

/**
 * Writes the transposed im2col matrix of images [b0, b1) of x into colsT:
 * x [B, H, W, CI] -> colsT [KH*KW*CI, (b1-b0)*OH*OW], row (kh*KW + kw)*CI + ci,
 * column (b*OH + oh)*OW + ow, zero where the window reads padding.
 */
function im2colTransposed(x: Float32Array, colsT: Float32Array, info: Conv2DInfo, b0: number, b1: number): void {
  const { inHeight: H, inWidth: W, inChannels: CI, outHeight: OH, outWidth: OW } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: sH, strideWidth: sW, dilationHeight: dH, dilationWidth: dW } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  const N = (b1 - b0) * OH * OW;
  for (let kh = 0; kh < KH; kh++) {
    for (let kw = 0; kw < KW; kw++) {
      const rowBase = (kh * KW + kw) * CI * N;
      for (let b = b0; b < b1; b++) {
        for (let oh = 0; oh < OH; oh++) {
          const ih = oh * sH - padTop + kh * dH;
          const colBase = ((b - b0) * OH + oh) * OW;
          if (ih < 0 || ih >= H) {
            for (let ci = 0; ci < CI; ci++) colsT.fill(0, rowBase + ci * N + colBase, rowBase + ci * N + colBase + OW);
            continue;
          }
          const xRow = (b * H + ih) * W;
          for (let ow = 0; ow < OW; ow++) {
            const iw = ow * sW - padLeft + kw * dW;
            const dst = rowBase + colBase + ow;
            if (iw < 0 || iw >= W) {
              for (let ci = 0; ci < CI; ci++) colsT[dst + ci * N] = 0;
            } else {
              const src = (xRow + iw) * CI;
              for (let ci = 0; ci < CI; ci++) colsT[dst + ci * N] = x[src + ci];
            }
          }
        }
      }
    }
  }
}

/**
 * Scatter-adds an im2col gradient back onto the image it came from:
 * dcols [(b1-b0)*OH*OW, KH*KW*CI] -> dx [B, H, W, CI] (images [b0, b1)), the adjoint of im2col.
 */
function col2imAdd(dcols: Float32Array, dx: Float32Array, info: Conv2DInfo, b0: number, b1: number): void {
  const { inHeight: H, inWidth: W, inChannels: CI, outHeight: OH, outWidth: OW } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: sH, strideWidth: sW, dilationHeight: dH, dilationWidth: dW } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  const K = KH * KW * CI;
  for (let b = b0; b < b1; b++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const rowBase = (((b - b0) * OH + oh) * OW + ow) * K;
        for (let kh = 0; kh < KH; kh++) {
          const ih = oh * sH - padTop + kh * dH;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < KW; kw++) {
            const iw = ow * sW - padLeft + kw * dW;
            if (iw < 0 || iw >= W) continue;
            const src = rowBase + (kh * KW + kw) * CI;
            const dst = ((b * H + ih) * W + iw) * CI;
            for (let ci = 0; ci < CI; ci++) dx[dst + ci] += dcols[src + ci];
          }
        }
      }
    }
  }
}

/**
 * BatchMatMul: a [..., M, K] . b [..., K, N] -> [..., M, N] (with transposeA / transposeB),
 * by the wasm backend's own kernel on untransposed operands: a transposed operand is first
 * transposed for real by the backend's Transpose kernel, because its XNNPACK path is several
 * times slower on transposed operands than a transpose plus a plain product (a dense
 * layer's backward pass: 15 ms against 2 ms for [64, 3136]^T x [64, 128]).
 */
function batchMatMul(args: KernelArgs): tf.TensorInfo {
  const kernel = "BatchMatMul";
  const backend = wasmBackend(args.backend, kernel);
  const own = replacedOriginals.get(kernel);
  const transposeKernel = tf.getKernel("Transpose", "wasm");
  if (!own || !transposeKernel) throw new Error(`${kernel} on wasm needs the wasm backend's own BatchMatMul and Transpose kernels, which are not registered.`);
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
  if (!transposeA && !transposeB) return own.kernelFunc(args) as tf.TensorInfo;
  const scratch: tf.TensorInfo[] = [];
  const swapLastTwo = (t: tf.TensorInfo): tf.TensorInfo => {
    const outer = t.shape.slice(0, -2);
    const [rows, cols] = t.shape.slice(-2);
    const batch = outer.reduce((p, d) => p * d, 1);
    // [..., rows, cols] -> [batch, rows, cols] (same memory) -> [batch, cols, rows] -> [..., cols, rows]
    const flipped = transposeKernel.kernelFunc({
      inputs: { x: { dataId: t.dataId, shape: [batch, rows, cols], dtype: t.dtype } },
      backend: args.backend,
      attrs: { perm: [0, 2, 1] },
    }) as tf.TensorInfo;
    scratch.push(flipped);
    return { dataId: flipped.dataId, shape: [...outer, cols, rows], dtype: t.dtype };
  };
  const product = own.kernelFunc({
    inputs: { a: transposeA ? swapLastTwo(a) : a, b: transposeB ? swapLastTwo(b) : b },
    backend: args.backend,
    attrs: { transposeA: false, transposeB: false },
  }) as tf.TensorInfo;
  for (const t of scratch) backend.disposeData(t.dataId);
  return product;
}

/** The wasm backend's own BatchMatMul kernel function (XNNPACK), which the conv kernels call directly. */
function wasmMatMul(kernel: string): tf.KernelFunc {
  const config = replacedOriginals.get("BatchMatMul") ?? tf.getKernel("BatchMatMul", "wasm");
  if (!config) throw new Error(`${kernel} on wasm needs the wasm backend's BatchMatMul kernel, which is not registered.`);
  return config.kernelFunc;
}

/** Plain a [M, K] . b [K, N] -> [M, N] on the wasm heap (transposed operands are ~10x slower there). */
function matMulPlain(matMul: tf.KernelFunc, backend: unknown, a: tf.TensorInfo, b: tf.TensorInfo): tf.TensorInfo {
  return matMul({ inputs: { a, b }, backend: backend as tf.KernelBackend, attrs: { transposeA: false, transposeB: false } }) as tf.TensorInfo;
}

/** Splits a batch into runs of images [b0, b1) whose scratch (floatsPerImage each) fits one chunk. */
function imageChunks(batch: number, floatsPerImage: number): Array<[number, number]> {
  const perChunk = Math.max(1, Math.floor(COLS_CHUNK_FLOATS / Math.max(1, floatsPerImage)));
  const chunks: Array<[number, number]> = [];
  for (let b0 = 0; b0 < batch; b0 += perChunk) chunks.push([b0, Math.min(batch, b0 + perChunk)]);
  return chunks;
}

/**
 * The rows of dy [B, OH, OW, CO] for images [b0, b1) as a [rows, CO] matrix: dy itself
 * reshaped when that is the whole batch (owned = false), else a copy the caller disposes.
 */
function dyRowsOf(backend: WasmHeapBackend, dy: tf.TensorInfo, b0: number, b1: number): { rows: tf.TensorInfo; owned: boolean } {
  const [B, OH, OW, CO] = dy.shape;
  const shape = [(b1 - b0) * OH * OW, CO];
  if (b0 === 0 && b1 === B) return { rows: { dataId: dy.dataId, shape, dtype: dy.dtype }, owned: false };
  const rows = backend.makeOutput(shape, "float32");
  floatView(backend, rows).set(floatView(backend, dy).subarray(b0 * OH * OW * CO, b1 * OH * OW * CO));
  return { rows, owned: true };
}

/**
 * Conv2DBackpropFilter: dW [KH, KW, CI, CO] from x [B, H, W, CI] and dy [B, OH, OW, CO],
 * as im2col (JavaScript, into the wasm heap) times dy (the backend's BatchMatMul).
 */
function conv2DBackpropFilter({ inputs, backend: rawBackend, attrs }: KernelArgs): tf.TensorInfo {
  const kernel = "Conv2DBackpropFilter";
  const backend = wasmBackend(rawBackend, kernel);
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  requireNHWC(kernel, a.dataFormat);
  requireFloat32(kernel, { x, dy });
  const filterShape = requireRank4(kernel, "filterShape", a.filterShape);
  const info = convInfoFor(requireRank4(kernel, "x", x.shape), filterShape, a, false);
  requireSameShape(kernel, "dy", dy.shape, info.outShape);
  const matMul = wasmMatMul(kernel);

  const K = info.filterHeight * info.filterWidth * info.inChannels;
  const pixels = info.outHeight * info.outWidth;
  const result = backend.makeOutput([K, info.outChannels], "float32");
  floatView(backend, result).fill(0);
  for (const [b0, b1] of imageChunks(info.batchSize, K * pixels)) {
    const colsT = backend.makeOutput([K, (b1 - b0) * pixels], "float32");
    const dyRows = dyRowsOf(backend, dy, b0, b1);
    im2colTransposed(floatView(backend, x), floatView(backend, colsT), info, b0, b1);
    const part = matMulPlain(matMul, rawBackend, colsT, dyRows.rows); // [K, rows] . [rows, CO] -> [K, CO]
    const sum = floatView(backend, result);
    const add = floatView(backend, part);
    for (let i = 0; i < sum.length; i++) sum[i] += add[i];
    for (const scratch of [colsT, part, ...(dyRows.owned ? [dyRows.rows] : [])]) backend.disposeData(scratch.dataId);
  }
  // [K, CO] -> [KH, KW, CI, CO]: the same memory.
  return { dataId: result.dataId, shape: filterShape, dtype: "float32" };
}

/**
 * Conv2DBackpropInput: dx [B, H, W, CI] from dy [B, OH, OW, CO] and filter [KH, KW, CI, CO],
 * as dy times the transposed filter (the backend's BatchMatMul) scattered back by col2im
 * (JavaScript). Replaces the wasm backend's own kernel, a plain loop about 6x slower.
 */
function conv2DBackpropInput({ inputs, backend: rawBackend, attrs }: KernelArgs): tf.TensorInfo {
  const kernel = "Conv2DBackpropInput";
  const backend = wasmBackend(rawBackend, kernel);
  const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const a = attrs as unknown as tf.Conv2DBackpropInputAttrs;
  requireNHWC(kernel, a.dataFormat);
  requireFloat32(kernel, { dy, filter });
  const inShape = requireRank4(kernel, "inputShape", a.inputShape);
  const info = convInfoFor(inShape, requireRank4(kernel, "filter", filter.shape), a, false);
  requireSameShape(kernel, "dy", dy.shape, info.outShape);
  const matMul = wasmMatMul(kernel);

  const K = info.filterHeight * info.filterWidth * info.inChannels;
  const CO = info.outChannels;
  const pixels = info.outHeight * info.outWidth;
  const out = backend.makeOutput(inShape, "float32");
  const filterT = backend.makeOutput([CO, K], "float32");
  floatView(backend, out).fill(0);
  const w = floatView(backend, filter);
  const wT = floatView(backend, filterT);
  for (let k = 0; k < K; k++) for (let co = 0; co < CO; co++) wT[co * K + k] = w[k * CO + co]; // [K, CO] -> [CO, K]
  for (const [b0, b1] of imageChunks(info.batchSize, K * pixels)) {
    const dyRows = dyRowsOf(backend, dy, b0, b1);
    const dcols = matMulPlain(matMul, rawBackend, dyRows.rows, filterT); // [rows, CO] . [CO, K] -> [rows, K]
    col2imAdd(floatView(backend, dcols), floatView(backend, out), info, b0, b1);
    for (const scratch of [dcols, ...(dyRows.owned ? [dyRows.rows] : [])]) backend.disposeData(scratch.dataId);
  }
  backend.disposeData(filterT.dataId);
  return out;
}

/**
 * Every (output pixel, filter tap) of a depthwise convolution whose input pixel lies inside
 * the image, as the flat offsets of its input pixel (x[b, ih, iw, 0]), output pixel
 * (dy[b, oh, ow, 0]) and tap (w[kh, kw, 0, 0]); the caller loops over channels. Both
 * depthwise gradients are this walk with a different inner loop.
 */
function forEachDepthwiseTap(info: Conv2DInfo, visit: (xBase: number, dyBase: number, wBase: number) => void): void {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: CO } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: sH, strideWidth: sW, dilationHeight: dH, dilationWidth: dW } = info;
  const M = CO / C;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  for (let b = 0; b < B; b++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const dyBase = ((b * OH + oh) * OW + ow) * CO;
        for (let kh = 0; kh < KH; kh++) {
          const ih = oh * sH - padTop + kh * dH;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < KW; kw++) {
            const iw = ow * sW - padLeft + kw * dW;
            if (iw < 0 || iw >= W) continue;
            visit(((b * H + ih) * W + iw) * C, dyBase, (kh * KW + kw) * C * M);
          }
        }
      }
    }
  }
}

/**
 * DepthwiseConv2dNativeBackpropFilter: dW [KH, KW, C, M] from x [B, H, W, C] and
 * dy [B, OH, OW, C*M], where dW[kh,kw,c,m] = sum over b,oh,ow of
 * x[b, oh*sH - padTop + kh*dH, ow*sW - padLeft + kw*dW, c] * dy[b, oh, ow, c*M + m].
 */
function depthwiseBackpropFilter({ inputs, backend: rawBackend, attrs }: KernelArgs): tf.TensorInfo {
  const kernel = "DepthwiseConv2dNativeBackpropFilter";
  const backend = wasmBackend(rawBackend, kernel);
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const a = attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs & { dataFormat?: string };
  requireNHWC(kernel, a.dataFormat);
  requireFloat32(kernel, { x, dy });
  const filterShape = requireRank4(kernel, "filterShape", a.filterShape);
  const info = convInfoFor(requireRank4(kernel, "x", x.shape), filterShape, a, true);
  requireSameShape(kernel, "dy", dy.shape, info.outShape);

  const out = backend.makeOutput(filterShape, "float32");
  const xs = floatView(backend, x);
  const dys = floatView(backend, dy);
  const C = info.inChannels;
  const M = info.outChannels / C;
  // Accumulate in float64: each entry sums B*OH*OW products.
  const acc = new Float64Array(filterShape[0] * filterShape[1] * C * M);
  forEachDepthwiseTap(info, (xBase, dyBase, wBase) => {
    for (let c = 0; c < C; c++) {
      const xv = xs[xBase + c];
      for (let m = 0; m < M; m++) acc[wBase + c * M + m] += xv * dys[dyBase + c * M + m];
    }
  });
  floatView(backend, out).set(acc);
  return out;
}

/**
 * DepthwiseConv2dNativeBackpropInput: dx [B, H, W, C] from dy [B, OH, OW, C*M] and
 * filter [KH, KW, C, M], scattering each dy pixel back through the window that made it.
 */
function depthwiseBackpropInput({ inputs, backend: rawBackend, attrs }: KernelArgs): tf.TensorInfo {
  const kernel = "DepthwiseConv2dNativeBackpropInput";
  const backend = wasmBackend(rawBackend, kernel);
  const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const a = attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs & { dataFormat?: string };
  requireNHWC(kernel, a.dataFormat);
  requireFloat32(kernel, { dy, filter });
  const inShape = requireRank4(kernel, "inputShape", a.inputShape);
  const info = convInfoFor(inShape, requireRank4(kernel, "filter", filter.shape), a, true);
  requireSameShape(kernel, "dy", dy.shape, info.outShape);

  const out = backend.makeOutput(inShape, "float32");
  const dx = floatView(backend, out);
  const dys = floatView(backend, dy);
  const ws = floatView(backend, filter);
  dx.fill(0);
  const C = info.inChannels;
  const M = info.outChannels / C;
  forEachDepthwiseTap(info, (xBase, dyBase, wBase) => {
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let m = 0; m < M; m++) s += dys[dyBase + c * M + m] * ws[wBase + c * M + m];
      dx[xBase + c] += s;
    }
  });
  return out;
}

/**
 * UnsortedSegmentSum: out [numSegments, ...inner] from x [N, ...inner] and segmentIds [N]
 * (int32), out[s] = sum of x[i] over i with segmentIds[i] == s. Ids outside
 * [0, numSegments) are dropped, as tfjs's cpu kernel does.
 */
function unsortedSegmentSum({ inputs, backend: rawBackend, attrs }: KernelArgs): tf.TensorInfo {
  const kernel = "UnsortedSegmentSum";
  const backend = wasmBackend(rawBackend, kernel);
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = attrs as unknown as tf.UnsortedSegmentSumAttrs;
  if (x.dtype !== "float32" && x.dtype !== "int32") {
    throw new Error(`${kernel} on wasm: x has dtype ${x.dtype}; use float32 or int32.`);
  }
  if (segmentIds.dtype !== "int32" || segmentIds.shape.length !== 1 || segmentIds.shape[0] !== x.shape[0]) {
    throw new Error(
      `${kernel} on wasm: segmentIds must be int32 of shape [${x.shape[0]}] (one id per row of x), ` +
        `got ${segmentIds.dtype} [${segmentIds.shape}].`,
    );
  }
  if (!Number.isInteger(numSegments) || numSegments < 0) {
    throw new Error(`${kernel} on wasm: numSegments must be a non-negative integer, got ${numSegments}.`);
  }
  const outShape = [numSegments, ...x.shape.slice(1)];
  const out = backend.makeOutput(outShape, x.dtype);
  const xs = backend.typedArrayFromHeap(x);
  const ids = backend.typedArrayFromHeap(segmentIds);
  const sums = backend.typedArrayFromHeap(out);
  sums.fill(0);
  const rows = x.shape[0] ?? 0;
  const inner = rows === 0 ? 0 : xs.length / rows;
  for (let i = 0; i < rows; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    for (let j = 0; j < inner; j++) sums[s * inner + j] += xs[i * inner + j];
  }
  return out;
}

/**
 * MaxPoolGrad: dx [B, H, W, C] from dy [B, OH, OW, C] and the pooled input [B, H, W, C]:
 * each window's dy goes to its maximum (the first one on ties, padding never counts),
 * as the cpu and tensorflow backends do.
 */
function maxPoolGrad({ inputs, backend: rawBackend, attrs }: KernelArgs): tf.TensorInfo {
  const kernel = "MaxPoolGrad";
  const backend = wasmBackend(rawBackend, kernel);
  const { dy, input } = inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  const a = attrs as unknown as tf.MaxPoolGradAttrs;
  requireFloat32(kernel, { dy, input });
  const inShape = requireRank4(kernel, "input", input.shape);
  const info = tf.backend_util.computePool2DInfo(inShape, a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
  requireSameShape(kernel, "dy", dy.shape, info.outShape);

  const out = backend.makeOutput(inShape, "float32");
  const dx = floatView(backend, out);
  const dys = floatView(backend, dy);
  const xs = floatView(backend, input);
  dx.fill(0);
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: sH, strideWidth: sW } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  const best = new Float32Array(C);
  const argmax = new Int32Array(C);
  for (let b = 0; b < B; b++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        best.fill(-Infinity);
        argmax.fill(-1);
        for (let kh = 0; kh < KH; kh++) {
          const ih = oh * sH - padTop + kh;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < KW; kw++) {
            const iw = ow * sW - padLeft + kw;
            if (iw < 0 || iw >= W) continue;
            const xBase = ((b * H + ih) * W + iw) * C;
            for (let c = 0; c < C; c++) {
              if (xs[xBase + c] > best[c]) {
                best[c] = xs[xBase + c];
                argmax[c] = xBase + c;
              }
            }
          }
        }
        const dyBase = ((b * OH + oh) * OW + ow) * C;
        for (let c = 0; c < C; c++) if (argmax[c] >= 0) dx[argmax[c]] += dys[dyBase + c];
      }
    }
  }
  return out;
}

const KERNEL_FUNCS: Record<(typeof WASM_TRAINING_KERNELS)[number], tf.KernelFunc> = {
  BatchMatMul: batchMatMul,
  Conv2DBackpropFilter: conv2DBackpropFilter,
  Conv2DBackpropInput: conv2DBackpropInput,
  DepthwiseConv2dNativeBackpropFilter: depthwiseBackpropFilter,
  DepthwiseConv2dNativeBackpropInput: depthwiseBackpropInput,
  UnsortedSegmentSum: unsortedSegmentSum,
  MaxPoolGrad: maxPoolGrad,
};

/**
 * Registers the kernels above for the 'wasm' backend: a missing one only where 'wasm' has
 * none under that name, a replaced one (BatchMatMul, Conv2DBackpropInput, MaxPoolGrad) in
 * place of the backend's own, keeping that one's setup and dispose hooks so its compiled
 * function is still bound when the backend starts. Call it after requiring
 * @tensorflow/tfjs-backend-wasm; calling it again is harmless, and other backends are untouched.
 */
export function registerWasmGradients(): void {
  for (const kernelName of WASM_TRAINING_KERNELS) {
    const kernelFunc = KERNEL_FUNCS[kernelName];
    const existing = tf.getKernel(kernelName, "wasm");
    if (existing?.kernelFunc === kernelFunc) continue;
    if (existing === undefined) {
      if (REPLACED_KERNELS.has(kernelName)) {
        throw new Error(
          `registerWasmGradients: the wasm backend has no ${kernelName} kernel to replace; require('@tensorflow/tfjs-backend-wasm') before calling it.`,
        );
      }
      tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc });
    } else if (REPLACED_KERNELS.has(kernelName)) {
      replacedOriginals.set(kernelName, existing);
      tf.unregisterKernel(kernelName, "wasm");
      tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc, setupFunc: existing.setupFunc, disposeFunc: existing.disposeFunc });
    }
  }
}
