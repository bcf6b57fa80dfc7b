/**
 * The shipped nginx.conf as an older nginx takes it. The conf is rendered for the
 * image's nginx (1.28); Debian 12's nginx (1.22), which the tests run, spells one
 * directive differently. Pure: the runner applies it, the tests check it.
 */

import { versionBefore } from '../../constructs/core/validate';

/**
 * The conf as `version` takes it: before 1.25.1, `http2 on;` (which only the TLS server
 * has) becomes the `http2` parameter of that server's `listen ... ssl` line.
 */
export function forNginx(conf: string, v: readonly number[]): string {
  if (!versionBefore(v, [1, 25, 1]) || !/^\s*http2 on;$/m.test(conf)) return conf;
  return conf.replace(/^\s*http2 on;\n/m, '').replace(/^(\s*listen \S+ ssl)\b/m, '$1 http2');
}
