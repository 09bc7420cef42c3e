/** Registers the convolution gradients the wasm backend lacks (filled in by the wasm work). */
export function registerWasmGradients(): void {}
