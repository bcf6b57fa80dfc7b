import { groupBySlot, keySlot } from '../../src/cache/key-slot';
import { chooseReplica, formatLsn, parseLsn, type ReplicaState } from '../../src/db/routing';
import { monthStart, partitionName } from '../../src/migrations/partitions';

const r = (name: string, over: Partial<ReplicaState> = {}): ReplicaState => ({
  name,
  healthy: true,
  lagSeconds: 0,
  replayLsn: parseLsn('0/100'),
  ...over,
});

describe('chooseReplica', () => {
  test('rotates over healthy replicas', () => {
    const rs = [r('a'), r('b')];
    expect([0, 1, 2, 3].map((c) => chooseReplica(rs, 10, c))).toEqual([0, 1, 0, 1]);
  });

  test('skips a replica that is down or lags beyond the bound', () => {
    const rs = [r('a', { healthy: false }), r('b', { lagSeconds: 11 }), r('c', { lagSeconds: 10 })];
    expect(chooseReplica(rs, 10, 0)).toBe(2);
    expect(chooseReplica(rs, 10, 1)).toBe(2);
  });

  test('falls back to the primary (undefined) when no replica qualifies', () => {
    expect(chooseReplica([r('a', { healthy: false })], 10, 0)).toBeUndefined();
    expect(chooseReplica([], 10, 0)).toBeUndefined();
  });

  test('read-your-writes: only replicas that replayed the LSN qualify', () => {
    const rs = [r('a', { replayLsn: parseLsn('0/FF') }), r('b', { replayLsn: parseLsn('1/0') })];
    expect(chooseReplica(rs, 10, 0, parseLsn('0/100'))).toBe(1);
    expect(chooseReplica(rs, 10, 0, parseLsn('1/1'))).toBeUndefined();
  });
});

describe('LSN', () => {
  test('orders across the high word', () => {
    expect(parseLsn('1/0') > parseLsn('0/FFFFFFFF')).toBe(true);
    expect(formatLsn(parseLsn('16/B374D848'))).toBe('16/B374D848');
  });

  test('fails when an LSN is malformed', () => {
    expect(() => parseLsn('16-B3')).toThrow('LSN ("16-B3") must look like 16/B374D848');
  });
});

describe('keySlot', () => {
  test('matches the CRC16/XMODEM check value of the cluster spec', () => {
    // CRC16/XMODEM("123456789") = 0x31C3 (the spec's reference value).
    expect(keySlot('123456789')).toBe(0x31c3);
  });

  test('hashes only a non-empty {hash tag}', () => {
    expect(keySlot('{user1000}.following')).toBe(keySlot('user1000'));
    expect(keySlot('foo{}{bar}')).not.toBe(keySlot('bar'));
  });

  test('groups keys by slot', () => {
    const groups = groupBySlot(['{a}1', '{a}2', '{b}1']);
    expect(groups).toEqual([['{a}1', '{a}2'], ['{b}1']]);
  });
});

describe('partitions', () => {
  test('month arithmetic crosses years in UTC', () => {
    const d = new Date('2026-11-30T23:59:00-05:00'); // 2026-12-01T04:59Z: December in UTC
    expect(partitionName(monthStart(d))).toBe('activity_logs_2026_12');
    expect(partitionName(monthStart(d, 1))).toBe('activity_logs_2027_01');
    expect(monthStart(d, 1).toISOString()).toBe('2027-01-01T00:00:00.000Z');
  });
});
