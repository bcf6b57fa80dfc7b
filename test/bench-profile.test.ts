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

test('total time charges each package or service directory with what its frames call, once per stack', () => {
  const node = (id: number, fn: string, url: string, hitCount: number, children: number[] = []) => ({
    ...frame(id, fn, url, hitCount),
    children,
  });
  const ioredis = 'file:///app/node_modules/ioredis/built/Pipeline.js';
  const s = summarizeProfile(
    JSON.stringify({
      nodes: [
        node(1, '(root)', '', 0, [2, 3, 8]),
        node(2, '(idle)', '', 50),
        node(3, 'handler', 'file:///app/service/src/routes/users/index.ts', 2, [4, 6]),
        node(4, 'exec', ioredis, 3, [5]),
        node(5, 'writev', '', 20),
        node(6, 'exec', ioredis, 1, [7]), // recursion: counted once on its stack
        node(7, 'exec', ioredis, 4),
        node(8, 'processTicksAndRejections', 'node:internal/process/task_queues', 10, [9]),
        node(9, 'writev', '', 10),
      ],
    }),
    5,
  );
  expect(s.busySamples).toBe(50);
  // service/routes: 2 + 3 + 20 + 1 + 4 = 30 of 50; ioredis: 3 + 20 + 1 + 4 = 28. node: frames are left out.
  expect(s.totals).toEqual([
    ['service/routes', 30 / 50],
    ['ioredis', 28 / 50],
  ]);
  expect(s.frames[0]).toEqual(['writev', 30 / 50]);
  expect(s.areas[0]).toEqual(['writev', 30 / 50]);
  expect(renderProfile('api', s)).toContain('| 56.0 % | `ioredis` |');
});
