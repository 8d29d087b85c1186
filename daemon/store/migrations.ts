/** Versioned schema of the daemon's database; `PRAGMA user_version` is the number of migrations applied. */
export const migrations: readonly string[] = [
  `
  CREATE TABLE identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    username TEXT NOT NULL,
    server TEXT NOT NULL,
    signature_public BLOB NOT NULL,
    signature_private BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    -- NULL while registration is pending: a retry reuses this key pair.
    registered_at INTEGER
  );

  -- Pool metadata; the private parts live in keypackage_secrets so they can be deleted on their own.
  CREATE TABLE keypackages (
    ref TEXT PRIMARY KEY,
    cipher_suite INTEGER NOT NULL,
    last_resort INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL
      CHECK (state IN ('created', 'available', 'reserved', 'spent', 'consumed', 'expired', 'failed')),
    public_data BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    uploaded_at INTEGER,
    reserved_at INTEGER,
    reserved_by TEXT,
    spent_at INTEGER,
    consumed_at INTEGER,
    not_after INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    seq INTEGER NOT NULL
  );
  CREATE INDEX keypackages_state ON keypackages (state, last_resort);

  CREATE TABLE keypackage_secrets (
    ref TEXT PRIMARY KEY REFERENCES keypackages (ref) ON DELETE CASCADE,
    init_private BLOB NOT NULL,
    hpke_private BLOB NOT NULL
  );

  -- Sync positions with the server (stream and catch-up), by name.
  CREATE TABLE cursors (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );

  -- Notifications recorded durably, replayed to a frontend that subscribes with the last id it saw.
  CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    name TEXT NOT NULL,
    params TEXT NOT NULL
  );
  `,
]
