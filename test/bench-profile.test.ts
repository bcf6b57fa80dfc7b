/** The profile summary the benchmarks print (tools/bench/profile.ts), from a V8 .cpuprofile. */
import { renderProfile, summarizeProfile } from '../tools/bench/profile';

const frame = (id: number, functionName: string, url: string, hitCount: number, lineNumber = 0) => ({
  id,
  callFrame: { functionName, url, lineNumber },
  hitCount,
});

// 100 samples: 40 idle, 60 busy (30 writev, 15 in a service file, 10 in ioredis, 5 GC).
const PROFILE = JSON.stringify({
  nodes: [
    frame(1, '(root)', '', 0),
    frame(2, '(idle)', '', 40),
    frame(3, 'writev', '', 30),
    frame(4, 'get', 'file:///app/service/src/cache/local.ts', 10, 47),
    frame(5, 'get', 'file:///app/service/src/cache/cache.ts', 5, 205),
    frame(6, 'write', 'file:///app/node_modules/ioredis/built/Pipeline.js', 10, 9),
    frame(7, '(garbage collector)', '', 5),
  ],
});

test('shares are of the busy samples; frames carry file and line, areas group by package or service directory', () => {
  const s = summarizeProfile(PROFILE, 3);
  expect(s.busySamples).toBe(60);
  expect(s.idleShare).toBeCloseTo(0.4);
  expect(s.frames).toEqual([
    ['writev', 0.5],
    ['get service/cache/local.ts:48', 10 / 60],
    ['write ioredis/built/Pipeline.js:10', 10 / 60],
  ]);
  expect(s.areas).toEqual([
    ['writev', 0.5],
    ['service/cache', 0.25],
    ['ioredis', 10 / 60],
  ]);
});

test('renders both tables, and leaves out the idle share when the profiler samples only busy time', () => {
  const s = summarizeProfile(PROFILE, 2);
  const md = renderProfile('one API process', s);
  expect(md).toContain('**one API process**: 60 busy samples, idle 40.0 % of the time.');
  expect(md).toContain('| 50.0 % | `writev` |');
  expect(md).toContain('| 25.0 % | `service/cache` |');
  expect(renderProfile('nginx', { ...s, idleShare: undefined })).toContain('**nginx**: 60 busy samples.');
});
