/**
 * A Secret volume as the kubelet writes it (its AtomicWriter): the files live in
 * a timestamped directory `..<time>`, `..data` is a symlink to the current one,
 * and each visible file is a symlink through `..data`. An update writes a new
 * directory, points a temporary symlink at it and renames that over `..data`
 * (one atomic step), then removes the old directory. A reader sees either every
 * old file or every new one, never a mix.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

let seq = 0;

/** Writes `files` into the volume at `dir` (made if missing) with the kubelet's atomic swap. */
export function writeSecretVolume(dir: string, files: Readonly<Record<string, string>>): void {
  fs.mkdirSync(dir, { recursive: true });
  const data = path.join(dir, '..data');
  const previous = fs.existsSync(data) ? fs.readlinkSync(data) : undefined;
  const stamp = `..${new Date().toISOString().replace(/[-:.TZ]/g, '_')}${process.pid}_${seq++}`;
  fs.mkdirSync(path.join(dir, stamp), { mode: 0o755 });
  for (const [name, content] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, stamp, name), content, { mode: 0o644 });
  }
  const tmp = path.join(dir, '..data_tmp');
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(stamp, tmp);
  fs.renameSync(tmp, data);
  for (const name of Object.keys(files)) {
    const link = path.join(dir, name);
    if (!fs.existsSync(link)) fs.symlinkSync(path.join('..data', name), link);
  }
  // A key the Secret no longer has: its visible link goes, as the kubelet removes it.
  for (const entry of fs.readdirSync(dir)) {
    if (!entry.startsWith('..') && !(entry in files) && fs.lstatSync(path.join(dir, entry)).isSymbolicLink()) {
      fs.rmSync(path.join(dir, entry));
    }
  }
  if (previous) fs.rmSync(path.join(dir, previous), { recursive: true, force: true });
}
