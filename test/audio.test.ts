import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { paramRef } from "../src/core/params";
import { MergeNetTrainer } from "../src/core/mergenet";
import {
  DIGIT_WORDS,
  encodeWav,
  espeakVersion,
  fft,
  fitDuration,
  hzToMel,
  LOG_MEL_DEFAULTS,
  loadSpokenDigits,
  logMelSpectrogram,
  melCentres,
  melFilterbank,
  melToHz,
  parseWav,
  samplesNeeded,
  splitSpeakers,
  spokenDigitSpeakers,
  synthesizeSpokenDigits,
} from "../src/data/audio";
import { getScenario } from "../src/experiments/scenario";
import { buildDigitsImageAudio, digitsPairsFor } from "../src/experiments/scenarios/cross-modality";
import { expectNoTensorLeak } from "./helpers/leaks";

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-audio-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function tone(hz: number, seconds: number, sampleRate = 22050, amplitude = 0.5): Float32Array {
  return Float32Array.from({ length: Math.round(seconds * sampleRate) }, (_, i) => amplitude * Math.sin((2 * Math.PI * hz * i) / sampleRate));
}

describe("FFT", () => {
  it("matches a direct DFT on random complex input", () => {
    let state = 12345;
    const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
    for (const n of [1, 2, 8, 64, 256]) {
      const re = Float64Array.from({ length: n }, random);
      const im = Float64Array.from({ length: n }, random);
      const wantRe = new Float64Array(n);
      const wantIm = new Float64Array(n);
      for (let k = 0; k < n; k++) {
        for (let t = 0; t < n; t++) {
          const angle = (-2 * Math.PI * k * t) / n;
          wantRe[k] += re[t] * Math.cos(angle) - im[t] * Math.sin(angle);
          wantIm[k] += re[t] * Math.sin(angle) + im[t] * Math.cos(angle);
        }
      }
      fft(re, im);
      for (let k = 0; k < n; k++) {
        expect(Math.abs(re[k] - wantRe[k])).toBeLessThan(1e-9);
        expect(Math.abs(im[k] - wantIm[k])).toBeLessThan(1e-9);
      }
    }
  });

  it("refuses lengths that are not powers of two", () => {
    expect(() => fft(new Float64Array(6), new Float64Array(6))).toThrow(/power of two, got 6/);
    expect(() => fft(new Float64Array(4), new Float64Array(2))).toThrow(/differ in length/);
  });
});

describe("log-mel spectrogram", () => {
  it("uses the HTK mel scale and filters with no empty row and peak at most 1", () => {
    expect(hzToMel(700)).toBeCloseTo(2595 * Math.log10(2), 9);
    expect(melToHz(hzToMel(1234))).toBeCloseTo(1234, 9);
    const filters = melFilterbank(LOG_MEL_DEFAULTS);
    const bins = LOG_MEL_DEFAULTS.nFft / 2 + 1;
    for (let m = 0; m < LOG_MEL_DEFAULTS.mels; m++) {
      const row = filters.subarray(m * bins, (m + 1) * bins);
      expect(Math.max(...row)).toBeGreaterThan(0.2);
      expect(Math.max(...row)).toBeLessThanOrEqual(1);
    }
  });

  it("puts a pure tone's energy in the mel filter centred nearest to it", () => {
    const centres = melCentres(LOG_MEL_DEFAULTS.mels, LOG_MEL_DEFAULTS.fMin, LOG_MEL_DEFAULTS.fMax);
    for (const hz of [300, 1000, 3000, 6000]) {
      const spec = logMelSpectrogram(tone(hz, 1));
      const frame = spec.subarray(10 * LOG_MEL_DEFAULTS.mels, 11 * LOG_MEL_DEFAULTS.mels);
      const loudest = frame.indexOf(Math.max(...frame));
      const nearest = centres.reduce((best, c, m) => (Math.abs(c - hz) < Math.abs(centres[best] - hz) ? m : best), 0);
      expect(Math.abs(loudest - nearest)).toBeLessThanOrEqual(1); // a tone between two centres may peak in either
      expect(frame[loudest] - Math.min(...frame)).toBeGreaterThan(5); // far above the other bands (in ln units)
    }
  });

  it("has shape [frames, mels], is deterministic, and sees silence past the signal's end", () => {
    const signal = fitDuration(tone(440, 0.3), samplesNeeded(LOG_MEL_DEFAULTS));
    const a = logMelSpectrogram(signal);
    const b = logMelSpectrogram(signal);
    expect(a.length).toBe(32 * 40);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(a.every(Number.isFinite)).toBe(true);
    expect(a[31 * 40 + 5]).toBeCloseTo(Math.log(1e-6), 6); // last frame: zeros only
    expect(logMelSpectrogram(signal, { frames: 8, mels: 20 }).length).toBe(8 * 20);
    expect(() => logMelSpectrogram(signal, { nFft: 1000 })).toThrow(/nFft must be a power of two/);
    expect(() => logMelSpectrogram(signal, { fMax: 20000 })).toThrow(/fMax <= sampleRate \/ 2/);
  });

  it("cuts the leading silence and pads or cuts to the length", () => {
    const signal = new Float32Array(100);
    signal.set([0.001, 0.5, -0.25], 40);
    const fitted = fitDuration(signal, 10);
    expect(fitted.length).toBe(10);
    expect(fitted[0]).toBeCloseTo(0.5, 6);
    expect(fitted[1]).toBeCloseTo(-0.25, 6);
    expect([...fitted.subarray(2)]).toEqual(new Array(8).fill(0));
  });
});

describe("WAV files", () => {
  it("round-trips 16-bit PCM and reads the sample rate", () => {
    const samples = tone(1000, 0.01, 16000);
    const wave = parseWav(encodeWav(samples, 16000));
    expect(wave.sampleRate).toBe(16000);
    expect(wave.samples.length).toBe(samples.length);
    samples.forEach((s, i) => expect(Math.abs(wave.samples[i] - s)).toBeLessThan(1 / 32767));
  });

  it("says what is wrong with a file it cannot read", () => {
    expect(() => parseWav(new Uint8Array(20), "x.wav")).toThrow(/x\.wav is not a RIFF\/WAVE file/);
    const eightBit = encodeWav(new Float32Array(4), 8000);
    new DataView(eightBit.buffer).setUint16(34, 8, true);
    expect(() => parseWav(eightBit, "y.wav")).toThrow(/y\.wav holds format 1 with 8-bit samples; only 16-bit/);
    expect(() => parseWav(encodeWav(new Float32Array(4), 8000).subarray(0, 36), "z.wav")).toThrow(/z\.wav has no data chunk/);
  });
});

describe("spoken-digit synthesis (espeak-ng)", () => {
  const cacheDir = tempDir();

  it("draws the same seeded speakers for the same request", () => {
    expect(spokenDigitSpeakers({ seed: 1, speakers: 5 })).toEqual(spokenDigitSpeakers({ seed: 1, speakers: 5 }));
    expect(spokenDigitSpeakers({ seed: 1, speakers: 5 })).not.toEqual(spokenDigitSpeakers({ seed: 2, speakers: 5 }));
    for (const s of spokenDigitSpeakers({ seed: 0, speakers: 50 })) {
      expect(s.pitch).toBeGreaterThanOrEqual(20);
      expect(s.pitch).toBeLessThanOrEqual(80);
      expect(s.speed).toBeGreaterThanOrEqual(120);
      expect(s.speed).toBeLessThanOrEqual(210);
      expect(s.voice).toMatch(/^en[a-z0-9-]*\+[mf]\d$/);
    }
  });

  it("writes 22,050 Hz WAVs and a manifest, reuses a matching folder, and reproduces the audio", async () => {
    const first = await synthesizeSpokenDigits({ cacheDir, seed: 0, speakers: 4 });
    expect(first.generated).toBe(true);
    expect(first.manifest.espeakVersion).toBe(espeakVersion());
    expect(first.manifest.espeakVersion).toMatch(/eSpeak NG/);
    expect(first.manifest.utterances.length).toBe(40);
    expect(first.manifest.utterances.filter((u) => u.digit === 7).length).toBe(4);
    const seven = first.manifest.utterances.find((u) => u.digit === 7)!;
    expect(seven.file).toMatch(/^seven-s00\d\.wav$/);
    const bytes = fs.readFileSync(path.join(first.folder, seven.file));
    const wave = parseWav(bytes);
    expect(wave.sampleRate).toBe(22050);
    expect(wave.samples.length / 22050).toBeGreaterThan(0.2);
    expect(Math.max(...wave.samples.map(Math.abs))).toBeGreaterThan(0.05);
    const again = await synthesizeSpokenDigits({ cacheDir, seed: 0, speakers: 4 });
    expect(again.generated).toBe(false);
    // The espeak-ng calls run as child processes while this process's event loop goes on (a
    // test runner's or a kernel's messages are answered): a timer fires during the rebuild.
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const rebuilt = await synthesizeSpokenDigits({ cacheDir, seed: 0, speakers: 4, force: true });
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(0);
    expect(rebuilt.generated).toBe(true);
    expect(fs.readFileSync(path.join(rebuilt.folder, seven.file)).equals(bytes)).toBe(true);
  });

  it("names the install command when espeak-ng is missing", async () => {
    const saved = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      await expect(synthesizeSpokenDigits({ cacheDir: tempDir(), speakers: 2 })).rejects.toThrow(/apt-get install espeak-ng/);
    } finally {
      process.env.PATH = saved;
    }
  });

  it("loads a split by speaker, standardised on the training set, and caches the spectrograms", async () => {
    const data = await loadSpokenDigits({ cacheDir, seed: 0, speakers: 4, splitSeed: 1, testFraction: 0.25 });
    try {
      expect(data.classes).toEqual([...DIGIT_WORDS]);
      expect(data.testSpeakers.length).toBe(1);
      expect(data.trainSpeakers.length).toBe(3);
      expect(data.trainSpeakers).not.toContain(data.testSpeakers[0]);
      expect(data.train.x.shape).toEqual([30, 32, 40, 1]);
      expect(data.test.x.shape).toEqual([10, 32, 40, 1]);
      expect([...data.test.y.dataSync()].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      const [mean, variance] = tf.tidy(() => {
        const m = tf.moments(data.train.x);
        return [m.mean.dataSync()[0], m.variance.dataSync()[0]];
      });
      expect(Math.abs(mean)).toBeLessThan(1e-4);
      expect(variance).toBeCloseTo(1, 3);
      const again = await loadSpokenDigits({ cacheDir, seed: 0, speakers: 4, splitSeed: 1 });
      expect(again.fromCache).toBe(true);
      expect(tf.tidy(() => tf.max(tf.abs(tf.sub(again.train.x, data.train.x))).dataSync()[0])).toBe(0);
      again.dispose();
    } finally {
      data.dispose();
    }
  });

  it("splits speakers reproducibly and checks the training subset size", () => {
    expect(splitSpeakers(80, 3, 0.25)).toEqual(splitSpeakers(80, 3, 0.25));
    const split = splitSpeakers(80, 3, 0.25, 10);
    expect(split.test.length).toBe(20);
    expect(split.train.length).toBe(10);
    expect(split.train.some((s) => split.test.includes(s))).toBe(false);
    expect(() => splitSpeakers(80, 3, 0.25, 61)).toThrow(/trainSpeakers must be a whole number from 1 to 60/);
  });
});

describe("scenario digits-image-audio", () => {
  it("is registered, declares no shared labels, and validates its options", async () => {
    expect(getScenario("digits-image-audio").build).toBe(buildDigitsImageAudio);
    await expect(buildDigitsImageAudio(0, { imageModel: "vit" as never })).rejects.toThrow(/imageModel must be one of "mlp", "cnn"/);
    await expect(buildDigitsImageAudio(0, { imageTrain: -5 })).rejects.toThrow(/imageTrain must be a positive whole number/);
  });

  for (const options of [{ direction: "image->audio" as const }, { direction: "audio->image" as const, imageModel: "mlp" as const }]) {
    it(`${options.direction}: suggested pairs resolve and MergeNet steps run without leaking`, async () => {
      const instance = await buildDigitsImageAudio(0, { ...options, imageTrain: 500, testImages: 200, audioTrainSpeakers: 10 });
      try {
        expect(instance.sharedLabels).toBe(false);
        expect(instance.metric).toBe("accuracy");
        const pairs = digitsPairsFor(options);
        const shape = (side: "source" | "target", name: string) => paramRef(instance[side].model, name).matrixShape;
        if (options.direction === "image->audio") {
          expect(instance.target.model.inputs[0].shape).toEqual([null, 32, 40, 1]);
          expect(instance.target.data.size).toBe(100); // 10 speakers x 10 digits
          expect(shape("source", pairs.classifier.source)).toEqual([10, 128]);
          expect(shape("target", pairs.classifier.target)).toEqual([10, 64]);
          expect(shape("target", pairs.released.target)).toEqual([32, 144]);
        } else {
          expect(shape("source", pairs.classifier.source)).toEqual([10, 64]);
          expect(shape("target", pairs.classifier.target)).toEqual([10, 128]);
          expect(shape("target", pairs.released.target)).toEqual([128, 256]);
        }
        const config = { pairs: [pairs.classifier, pairs.released], cycle: 1, adapter: { layers: 1 }, seed: 0 };
        let transfers = 0;
        await expectNoTensorLeak(() => {
          const trainer = new MergeNetTrainer(instance.source, instance.target, config);
          for (let i = 0; i < 3; i++) trainer.trainStep();
          trainer.dispose();
          transfers = trainer.history.transfers.length;
          expect(trainer.history.targetLoss.every(Number.isFinite)).toBe(true);
        }, { warmup: 1, repeats: 1 });
        expect(transfers).toBe(6);
        const scores = await instance.target.evaluate!(instance.target.model);
        expect(scores.accuracy).toBeGreaterThanOrEqual(0);
        expect(scores.accuracy).toBeLessThanOrEqual(1);
      } finally {
        instance.dispose();
      }
    });
  }
});
