import { isConnectionError } from '../../src/db/database';

describe('isConnectionError (lost database => 503, not 500)', () => {
  test.each([
    [{ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:5432' }],
    [{ code: '57P01', message: 'terminating connection due to administrator command' }],
    [{ message: 'Connection terminated unexpectedly' }],
    // The next query on a client whose socket died while it was checked out (seen in the primary-restart drill).
    [{ message: 'Client has encountered a connection error and is not queryable' }],
    [{ message: 'Client was closed and is not queryable' }],
    // PgBouncer, when it cannot reach the server behind it (a failover in progress).
    [{ code: '08P01', message: 'server login has been failing, try again later (server_login_retry)' }],
    // A new leader for the moment before it takes writes, or the old one after a switchover.
    [{ code: '25006', message: 'cannot execute INSERT in a read-only transaction' }],
  ])('%j is a connection error', (err) => {
    expect(isConnectionError(Object.assign(new Error(err.message), err))).toBe(true);
  });

  test.each([
    [{ code: '23505', message: 'duplicate key value violates unique constraint "users_email_key"' }],
    [{ code: '42P01', message: 'relation "nope" does not exist' }],
    [{ message: 'something else' }],
  ])('%j is not', (err) => {
    expect(isConnectionError(Object.assign(new Error(err.message), err))).toBe(false);
  });
});
