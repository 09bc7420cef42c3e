/**
 * A small on-disk cache of byte arrays (parsed dataset files), so that a dataset read once
 * from its compressed source loads from one flat file afterwards.
 *
 * File layout: the 8 ASCII bytes `MNETCAC1`, a little-endian uint32 header length, a JSON
 * header `{ key, lengths, crc32 }`, then the arrays back to back. `key` describes what was
 * cached and from which source (names, sizes, modification times); a cache whose key differs
 * from the caller's, whose length is off, or whose checksum fails is treated as absent, so
 * the caller re-parses the source and overwrites it. Writes go to a temporary file in the
 * same folder and are renamed into place, so a reader never sees a half-written cache.
 */
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import { logger } from "../log";

const MAGIC = Buffer.from("MNETCAC1", "ascii");

interface CacheHeader {
  key: unknown;
  lengths: number[];
  crc32: number[];
}

/** CRC-32 (IEEE): Node's native one where present (Node >= 20.15), else a table-driven one. */
function crc32(bytes: Uint8Array): number {
  if (typeof zlib.crc32 === "function") return zlib.crc32(bytes);
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * Reads the arrays cached in `file` under `key`. Returns undefined when the file is missing
 * or does not hold exactly what `key` describes (logged, so a silent re-parse is visible).
 */
export function readCache(file: string, key: unknown): Uint8Array[] | undefined {
  if (!fs.existsSync(file)) return undefined;
  const stale = (why: string): undefined => {
    logger.info(`cache ${file} ignored (${why}); re-reading the source`);
    return undefined;
  };
  const buffer = fs.readFileSync(file);
  if (buffer.length < MAGIC.length + 4 || !buffer.subarray(0, MAGIC.length).equals(MAGIC)) return stale("bad magic");
  const headerLength = buffer.readUInt32LE(MAGIC.length);
  const headerStart = MAGIC.length + 4;
  if (buffer.length < headerStart + headerLength) return stale("truncated header");
  let header: CacheHeader;
  try {
    header = JSON.parse(buffer.subarray(headerStart, headerStart + headerLength).toString("utf8")) as CacheHeader;
  } catch {
    return stale("unreadable header");
  }
  if (JSON.stringify(header.key) !== JSON.stringify(key)) return stale("made from a different source");
  if (!Array.isArray(header.lengths) || !Array.isArray(header.crc32) || header.lengths.length !== header.crc32.length) {
    return stale("malformed header");
  }
  let offset = headerStart + headerLength;
  const total = header.lengths.reduce((a, b) => a + b, 0);
  if (buffer.length !== offset + total) return stale(`expected ${offset + total} bytes, found ${buffer.length}`);
  const arrays: Uint8Array[] = [];
  for (let i = 0; i < header.lengths.length; i++) {
    const array = buffer.subarray(offset, offset + header.lengths[i]);
    if (crc32(array) !== header.crc32[i]) return stale(`checksum mismatch in array ${i}`);
    arrays.push(array);
    offset += header.lengths[i];
  }
  return arrays;
}

/** Writes `arrays` under `key` to `file` atomically (temporary file, then rename). */
export function writeCache(file: string, key: unknown, arrays: Uint8Array[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const header: CacheHeader = { key, lengths: arrays.map((a) => a.length), crc32: arrays.map(crc32) };
  const headerBytes = Buffer.from(JSON.stringify(header), "utf8");
  const headerLength = Buffer.alloc(4);
  headerLength.writeUInt32LE(headerBytes.length);
  const temp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    const fd = fs.openSync(temp, "w");
    try {
      for (const chunk of [MAGIC, headerLength, headerBytes, ...arrays]) writeAll(fd, chunk);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, file);
  } catch (err) {
    fs.rmSync(temp, { force: true });
    throw err;
  }
}

function writeAll(fd: number, chunk: Uint8Array): void {
  let written = 0;
  while (written < chunk.length) written += fs.writeSync(fd, chunk, written, chunk.length - written);
}
