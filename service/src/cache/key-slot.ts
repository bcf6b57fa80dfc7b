/**
 * Redis Cluster hash slot of a key (CRC16/XMODEM of the key or of its `{hash tag}`, mod 16384),
 * as the cluster spec defines it. Used to group multi-key commands by slot, which the
 * cluster requires (CROSSSLOT otherwise).
 */
const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ b) & 0xff];
  return crc;
}

export const SLOT_COUNT = 16384;

export function keySlot(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  const open = bytes.indexOf(0x7b); // '{'
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1); // '}'
    // Only a non-empty tag counts: "{}" hashes the whole key.
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % SLOT_COUNT;
  }
  return crc16(bytes) % SLOT_COUNT;
}

/** Groups keys by hash slot, so each group can be one multi-key command. */
export function groupBySlot(keys: readonly string[]): string[][] {
  const groups = new Map<number, string[]>();
  for (const k of keys) {
    const s = keySlot(k);
    const g = groups.get(s);
    if (g) g.push(k);
    else groups.set(s, [k]);
  }
  return [...groups.values()];
}
