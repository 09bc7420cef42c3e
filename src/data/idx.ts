/**
 * Reader for the IDX format that MNIST and Fashion-MNIST ship in (LeCun's format: a 4-byte
 * magic number `0x00 0x00 <type> <rank>`, `rank` big-endian uint32 dimensions, then the
 * values row-major). Only unsigned bytes (type 0x08) occur in these datasets, so only they
 * are accepted. Files may be gzip-compressed (Fashion-MNIST's Debian package ships `.gz`);
 * compression is recognised by the gzip signature, not by the file name.
 */
import * as fs from "fs";
import * as zlib from "zlib";

/** A parsed IDX file: its dimensions and its bytes (length = product of dims). */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const UBYTE = 0x08;

/**
 * Parses an IDX buffer. `file` only names the source in error messages. `expectedRank`
 * guards against swapping an images file (rank 3) for a labels file (rank 1).
 */
export function parseIdx(buffer: Uint8Array, file: string, expectedRank: number): IdxArray {
  const corrupt = (what: string): Error =>
    new Error(`${file} is not a valid IDX file: ${what}. The file is corrupt or truncated; reinstall the package that provides it.`);
  if (buffer.length < 4) throw corrupt(`only ${buffer.length} bytes`);
  if (buffer[0] !== 0 || buffer[1] !== 0) throw corrupt("magic number does not start with two zero bytes");
  if (buffer[2] !== UBYTE) throw corrupt(`element type 0x${buffer[2].toString(16)} (expected 0x08, unsigned byte)`);
  const rank = buffer[3];
  if (rank !== expectedRank) throw corrupt(`rank ${rank} (expected ${expectedRank})`);
  const headerBytes = 4 + 4 * rank;
  if (buffer.length < headerBytes) throw corrupt(`header needs ${headerBytes} bytes, file has ${buffer.length}`);
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const size = dims.reduce((a, b) => a * b, 1);
  const available = buffer.length - headerBytes;
  if (available !== size) {
    throw corrupt(`dimensions [${dims.join(", ")}] need ${size} data bytes, file has ${available}`);
  }
  return { dims, data: buffer.subarray(headerBytes, headerBytes + size) };
}

/** True when the bytes start with the gzip signature 1f 8b. */
function isGzip(buffer: Uint8Array): boolean {
  return buffer.length >= 2 && buffer[0] === 0x1f && buffer[1] === 0x8b;
}

/** Reads and parses an IDX file from disk, gunzipping it when it is gzip-compressed. */
export function readIdxFile(file: string, expectedRank: number): IdxArray {
  const raw = fs.readFileSync(file);
  let bytes: Uint8Array = raw;
  if (isGzip(raw)) {
    try {
      bytes = zlib.gunzipSync(raw);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new Error(`${file} is a corrupt or truncated gzip file (${why}); reinstall the package that provides it.`);
    }
  }
  return parseIdx(bytes, file, expectedRank);
}
