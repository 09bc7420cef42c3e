/**
 * The one MergeNet preset of the notebooks' configurations: the released code's setting, which
 * is MergeNet's own defaults (MERGENET_DEFAULTS: transfer every 2 steps, the `hypernet` rule,
 * `interp` write-back) with a one-layer adapter where ADAPTER_DEFAULTS has two. The settings are
 * spelled out in every method (not left to the defaults) because a method's configuration is
 * part of its run's cache key.
 */
import { MERGENET_DEFAULTS, type LayerPair, type MergeNetConfig } from "../../core/mergenet";
import type { MethodSpec } from "../methods";

export const MERGENET_PRESET = {
  cycle: MERGENET_DEFAULTS.cycle,
  rule: MERGENET_DEFAULTS.rule,
  output: MERGENET_DEFAULTS.output,
  adapter: { layers: 1 },
} satisfies Partial<MergeNetConfig>;

/**
 * A MergeNet method on one layer pair: the preset, with `extra` over it (its adapter options are
 * added to the preset's one layer) and `more` at the method's level (e.g. pretrainSourceEpochs).
 */
export function mergenet(name: string, pair: LayerPair, extra: Partial<MergeNetConfig> = {}, more: Partial<MethodSpec> = {}): MethodSpec {
  const adapter = { ...MERGENET_PRESET.adapter, ...(extra.adapter ?? {}) };
  return { name, kind: "mergenet", mergenet: { ...MERGENET_PRESET, ...extra, adapter, pairs: [pair] }, ...more } as MethodSpec;
}
