/**
 * Versioned schema of the server database. Each entry runs once, in order, in one transaction,
 * and bumps PRAGMA user_version. Never edit a shipped migration: append a new one.
 */
export const migrations: readonly string[] = [
  // 1: authentication and key directory
  `
  CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    signature_key BLOB NOT NULL,
    created_at    INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE challenges (
    id         TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users(username),
    nonce      BLOB NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users(username),
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;

  -- state: available | reserved | spent | retired (a replaced last-resort key)
  CREATE TABLE keypackages (
    ref            BLOB PRIMARY KEY,
    owner          TEXT NOT NULL REFERENCES users(username),
    cipher_suite   INTEGER NOT NULL,
    data           BLOB NOT NULL,
    not_after      INTEGER NOT NULL,
    last_resort    INTEGER NOT NULL DEFAULT 0,
    state          TEXT NOT NULL,
    uploaded_at    INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    reservation_id TEXT,
    reserved_by    TEXT,
    reserved_until INTEGER,
    spent_at       INTEGER
  );
  CREATE INDEX keypackages_pick ON keypackages(owner, cipher_suite, state, last_resort, seq);
  CREATE INDEX keypackages_expiry ON keypackages(not_after);

  -- every HPKE init key ever accepted, so that none is accepted twice (RFC 9420 §16.8)
  CREATE TABLE init_keys (
    init_key BLOB PRIMARY KEY,
    ref      BLOB NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE reservations (
    id         TEXT PRIMARY KEY,
    ref        BLOB NOT NULL,
    owner      TEXT NOT NULL,
    requester  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    spent_at   INTEGER
  ) WITHOUT ROWID;
  CREATE INDEX reservations_expiry ON reservations(expires_at);

  CREATE TABLE audit (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             INTEGER NOT NULL,
    action         TEXT NOT NULL,
    owner          TEXT NOT NULL,
    ref            BLOB,
    actor          TEXT,
    reservation_id TEXT
  );
  CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
  CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
  `,
  // 2: delivery service: groups, rosters, group logs, per-user inboxes
  `
  CREATE TABLE groups (
    id         TEXT PRIMARY KEY,           -- MLS group id, canonical base64url
    epoch      INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL,           -- kept here so that seqs never repeat after retention deletes entries
    created_by TEXT NOT NULL REFERENCES users(username),
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;

  -- removed_seq NULL: on the roster. Otherwise the member may still read entries up to the removing Commit.
  CREATE TABLE group_members (
    group_id    TEXT NOT NULL REFERENCES groups(id),
    username    TEXT NOT NULL REFERENCES users(username),
    joined_seq  INTEGER NOT NULL,
    removed_seq INTEGER,
    PRIMARY KEY (group_id, username)
  ) WITHOUT ROWID;
  CREATE INDEX group_members_user ON group_members(username);

  CREATE TABLE group_log (
    group_id    TEXT NOT NULL REFERENCES groups(id),
    seq         INTEGER NOT NULL,
    epoch       INTEGER NOT NULL,
    kind        TEXT NOT NULL,             -- commit | proposal | application
    sender      TEXT NOT NULL,
    data        BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, seq)
  ) WITHOUT ROWID;
  CREATE INDEX group_log_age ON group_log(received_at);

  CREATE TABLE inbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,  -- the cursor: never reused
    username   TEXT NOT NULL REFERENCES users(username),
    kind       TEXT NOT NULL,
    group_id   TEXT,                               -- welcome and removed items
    item       TEXT NOT NULL,                      -- the InboxItem as JSON, sent as is
    created_at INTEGER NOT NULL
  );
  CREATE INDEX inbox_user ON inbox(username, id);
  CREATE INDEX inbox_age ON inbox(created_at);
  `,
  // 3: idempotent message posts: a sender's client-chosen id, unique per group and sender
  `
  ALTER TABLE group_log ADD COLUMN client_id BLOB;
  CREATE UNIQUE INDEX group_log_client_id ON group_log(group_id, sender, client_id) WHERE client_id IS NOT NULL;
  `,
  // 4: what retention deleted, so that nothing is lost silently. Per group: every entry with seq <= pruned_seq is
  // gone (retention deletes a prefix of each log). Per user: how many inbox items retention deleted before they were
  // acknowledged, and the highest id among them; the row goes when an ack reaches that id.
  // Entries deleted before this migration: every seq below the oldest entry left (all of last_seq if none is left).
  `
  ALTER TABLE groups ADD COLUMN pruned_seq INTEGER NOT NULL DEFAULT 0;
  UPDATE groups SET pruned_seq = coalesce((SELECT min(seq) - 1 FROM group_log WHERE group_id = groups.id), last_seq);

  CREATE TABLE inbox_expired (
    username TEXT PRIMARY KEY REFERENCES users(username),
    count    INTEGER NOT NULL,
    through  INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // 5: the pool under pressure. A reservation that lapsed unused is marked (and reported to the key's owner) once;
  // the partial indexes find open reservations past their expiry without scanning the spent ones. Challenges are
  // counted per user to cap the outstanding ones.
  `
  ALTER TABLE reservations ADD COLUMN lapsed_at INTEGER;
  CREATE INDEX reservations_open ON reservations(owner, expires_at) WHERE spent_at IS NULL AND lapsed_at IS NULL;
  CREATE INDEX reservations_open_expiry ON reservations(expires_at) WHERE spent_at IS NULL AND lapsed_at IS NULL;
  CREATE INDEX challenges_user ON challenges(username, expires_at);
  `,
]
