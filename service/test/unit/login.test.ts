import { EnvError, loadConfig } from '../../src/config';
import { clientClass } from '../../src/db/database';
import { type LoginFiles, readLogin, rotatingClient } from '../../src/db/login';

const FILES: LoginFiles = {
  user: 'fastnext',
  passwordFile: '/secrets/postgres/password',
  alternateUser: 'fastnext_b',
  alternatePasswordFile: '/secrets/postgres/alternate-password',
  activeLoginFile: '/secrets/postgres/active-login',
};

/** A mounted Secret: path -> content; a missing path throws ENOENT as the file system does. */
function volume(files: Record<string, string>) {
  const reads: string[] = [];
  const readFile = (p: string) => {
    reads.push(p);
    if (!(p in files)) throw Object.assign(new Error(`ENOENT: no such file, open '${p}'`), { code: 'ENOENT' });
    return files[p];
  };
  return { files, reads, readFile };
}

describe('readLogin', () => {
  test('no active-login file (the key is absent from the Secret): the first login', () => {
    const v = volume({ [FILES.passwordFile]: 'a-pass\n', [FILES.alternatePasswordFile]: 'b-pass' });
    expect(readLogin(FILES, v.readFile)).toEqual({ user: 'fastnext', password: 'a-pass' });
  });

  test('active-login names the second login: its name and its password', () => {
    const v = volume({
      [FILES.passwordFile]: 'a-pass',
      [FILES.alternatePasswordFile]: 'b-pass\n',
      [FILES.activeLoginFile]: 'fastnext_b\n',
    });
    expect(readLogin(FILES, v.readFile)).toEqual({ user: 'fastnext_b', password: 'b-pass' });
  });

  test('an empty active-login and one naming the first login both mean the first login', () => {
    for (const active of ['', 'fastnext', ' fastnext \n']) {
      const v = volume({
        [FILES.passwordFile]: 'a',
        [FILES.alternatePasswordFile]: 'b',
        [FILES.activeLoginFile]: active,
      });
      expect(readLogin(FILES, v.readFile)).toEqual({ user: 'fastnext', password: 'a' });
    }
  });

  test('reads the files again at every call: a flip of active-login applies to the next connection', () => {
    const v = volume({
      [FILES.passwordFile]: 'a',
      [FILES.alternatePasswordFile]: 'b',
      [FILES.activeLoginFile]: 'fastnext',
    });
    expect(readLogin(FILES, v.readFile).user).toBe('fastnext');
    v.files[FILES.activeLoginFile] = 'fastnext_b';
    expect(readLogin(FILES, v.readFile)).toEqual({ user: 'fastnext_b', password: 'b' });
    v.files[FILES.alternatePasswordFile] = 'b2';
    expect(readLogin(FILES, v.readFile).password).toBe('b2');
  });

  test('fails when active-login names neither login, with the value and the fix', () => {
    const v = volume({
      [FILES.passwordFile]: 'a',
      [FILES.alternatePasswordFile]: 'b',
      [FILES.activeLoginFile]: 'postgres',
    });
    expect(() => readLogin(FILES, v.readFile)).toThrow(
      `/secrets/postgres/active-login ("postgres") must name fastnext or fastnext_b: fix the Secret's active-login key`,
    );
  });

  test('a read error other than a missing file is not taken for "no active login"', () => {
    const readFile = () => {
      throw Object.assign(new Error('EACCES'), { code: 'EACCES' });
    };
    expect(() => readLogin(FILES, readFile)).toThrow('EACCES');
  });
});

describe('rotatingClient', () => {
  test('each new client gets the login in use when it is made; the rest of the config is kept', () => {
    const v = volume({ [FILES.passwordFile]: 'a', [FILES.alternatePasswordFile]: 'b' });
    const C = rotatingClient(FILES, v.readFile);
    const first = new C({ host: '127.0.0.1', port: 6432, database: 'fastnext', user: 'ignored', password: 'ignored' });
    v.files[FILES.activeLoginFile] = 'fastnext_b';
    const second = new C({ host: '127.0.0.1', port: 6432, database: 'fastnext' });
    expect([first.user, first.password, first.host, first.port, first.database]).toEqual([
      'fastnext',
      'a',
      '127.0.0.1',
      6432,
      'fastnext',
    ]);
    expect([second.user, second.password]).toEqual(['fastnext_b', 'b']);
  });

  test('clientClass: the plain pg Client without two logins', () => {
    expect(clientClass({ logins: undefined }).name).toBe('Client');
    expect(clientClass({ logins: FILES }).name).toBe('RotatingLoginClient');
  });
});

describe('loadConfig with POSTGRES_ALTERNATE_USER', () => {
  const BASE = {
    POSTGRES_SERVER: 'pgbouncer:6432',
    POSTGRES_USER: 'fastnext',
    POSTGRES_PASSWORD_FILE: FILES.passwordFile,
    MANAGEMENT_TOKEN: '0123456789abcdef',
    CACHE_ENABLED: 'false',
  };
  const readFile = (p: string) => (p === FILES.passwordFile ? 'a' : '');

  test('the logins come from the files', () => {
    const c = loadConfig(
      {
        ...BASE,
        POSTGRES_ALTERNATE_USER: 'fastnext_b',
        POSTGRES_ALTERNATE_PASSWORD_FILE: FILES.alternatePasswordFile,
        POSTGRES_ACTIVE_LOGIN_FILE: FILES.activeLoginFile,
      },
      readFile,
    );
    expect(c.postgres.logins).toEqual(FILES);
  });

  test('without it: one login, read once', () => {
    expect(loadConfig(BASE, readFile).postgres.logins).toBeUndefined();
  });

  test('fails when a file is missing, naming the variable', () => {
    expect(() => loadConfig({ ...BASE, POSTGRES_ALTERNATE_USER: 'fastnext_b' }, readFile)).toThrow(
      new EnvError(
        "POSTGRES_ALTERNATE_PASSWORD_FILE is required with POSTGRES_ALTERNATE_USER (the file holding fastnext_b's password)",
      ),
    );
  });

  test('fails when the second login is the first', () => {
    expect(() =>
      loadConfig(
        {
          ...BASE,
          POSTGRES_ALTERNATE_USER: 'fastnext',
          POSTGRES_ALTERNATE_PASSWORD_FILE: 'x',
          POSTGRES_ACTIVE_LOGIN_FILE: 'y',
        },
        readFile,
      ),
    ).toThrow('POSTGRES_ALTERNATE_USER ("fastnext") must differ from POSTGRES_USER: name the second login');
  });
});
