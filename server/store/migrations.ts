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
  // 6: accounts and devices (issue 16). An account is a user id (UUID v4) and a handle (the old user name); every
  // device has its own id (16 hex digits), login key, MLS key and client id `<user-id>:<device-id>@<domain>`. Each old
  // user becomes an account with one device whose login key and bound MLS key are the old user key; everything the
  // old user held (challenges, sessions, KeyPackages, reservations, groups created, memberships, log entries, inbox)
  // moves to that device. client_id stays NULL here: the store fills it in with its --domain when it opens the file.
  // The audit log is append-only and keeps the user names it recorded; new rows name devices.
  // Tables whose foreign keys named users (and, with groups rebuilt, the group log) are rebuilt: create, copy, drop
  // the old children before their parents (so no row is left dangling), rename.
  `
  CREATE TABLE accounts (
    user_id    TEXT PRIMARY KEY,
    handle     TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;

  -- n: creation order ("oldest device first"). removed_at NULL: active.
  CREATE TABLE devices (
    n          INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL REFERENCES accounts(user_id),
    client_id  TEXT UNIQUE,
    login_key  BLOB NOT NULL,
    mls_key    BLOB,
    created_at INTEGER NOT NULL,
    removed_at INTEGER
  );
  CREATE INDEX devices_user ON devices(user_id, n);
  CREATE INDEX devices_login_key ON devices(login_key);

  -- one-time device link codes, stored as SHA-256
  CREATE TABLE link_codes (
    code_hash  BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES accounts(user_id),
    created_by TEXT NOT NULL REFERENCES devices(id),
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX link_codes_user ON link_codes(user_id, expires_at);

  CREATE TEMP TABLE user_map AS
    SELECT username, lower(hex(randomblob(16))) AS h, lower(hex(randomblob(8))) AS device FROM users;
  -- device ids with a first hex digit of 8-f, as the server makes them (services/auth.ts newDevice)
  UPDATE user_map
    SET device = substr('89abcdef', (instr('0123456789abcdef', substr(device, 1, 1)) - 1) % 8 + 1, 1) || substr(device, 2);
  INSERT INTO accounts (user_id, handle, created_at)
    SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-' ||
           substr('89ab', (instr('0123456789abcdef', substr(h, 17, 1)) - 1) % 4 + 1, 1) || substr(h, 18, 3) || '-' ||
           substr(h, 21, 12),
           m.username, u.created_at
    FROM user_map m JOIN users u ON u.username = m.username ORDER BY u.created_at, u.username;
  INSERT INTO devices (id, user_id, login_key, mls_key, created_at)
    SELECT m.device, a.user_id, u.signature_key, u.signature_key, u.created_at
    FROM user_map m JOIN users u ON u.username = m.username JOIN accounts a ON a.handle = m.username
    ORDER BY u.created_at, u.username;

  CREATE TABLE challenges_new (
    id         TEXT PRIMARY KEY,
    device     TEXT NOT NULL REFERENCES devices(id),
    nonce      BLOB NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO challenges_new SELECT c.id, m.device, c.nonce, c.expires_at
    FROM challenges c JOIN user_map m ON m.username = c.username;

  CREATE TABLE sessions_new (
    token_hash BLOB PRIMARY KEY,
    device     TEXT NOT NULL REFERENCES devices(id),
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO sessions_new SELECT s.token_hash, m.device, s.expires_at
    FROM sessions s JOIN user_map m ON m.username = s.username;

  CREATE TABLE keypackages_new (
    ref            BLOB PRIMARY KEY,
    owner          TEXT NOT NULL REFERENCES devices(id),
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
  INSERT INTO keypackages_new
    SELECT k.ref, o.device, k.cipher_suite, k.data, k.not_after, k.last_resort, k.state, k.uploaded_at, k.seq,
           k.reservation_id, r.device, k.reserved_until, k.spent_at
    FROM keypackages k JOIN user_map o ON o.username = k.owner LEFT JOIN user_map r ON r.username = k.reserved_by;

  UPDATE reservations SET
    owner = coalesce((SELECT device FROM user_map WHERE username = reservations.owner), owner),
    requester = coalesce((SELECT device FROM user_map WHERE username = reservations.requester), requester);

  CREATE TABLE groups_new (
    id         TEXT PRIMARY KEY,
    epoch      INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL,
    created_by TEXT NOT NULL REFERENCES devices(id),
    created_at INTEGER NOT NULL,
    pruned_seq INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  INSERT INTO groups_new SELECT g.id, g.epoch, g.last_seq, m.device, g.created_at, g.pruned_seq
    FROM groups g JOIN user_map m ON m.username = g.created_by;

  CREATE TABLE group_members_new (
    group_id    TEXT NOT NULL REFERENCES groups_new(id),
    device      TEXT NOT NULL REFERENCES devices(id),
    joined_seq  INTEGER NOT NULL,
    removed_seq INTEGER,
    PRIMARY KEY (group_id, device)
  ) WITHOUT ROWID;
  INSERT INTO group_members_new SELECT gm.group_id, m.device, gm.joined_seq, gm.removed_seq
    FROM group_members gm JOIN user_map m ON m.username = gm.username;

  CREATE TABLE group_log_new (
    group_id    TEXT NOT NULL REFERENCES groups_new(id),
    seq         INTEGER NOT NULL,
    epoch       INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    sender      TEXT NOT NULL,             -- the device
    data        BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    client_id   BLOB,
    PRIMARY KEY (group_id, seq)
  ) WITHOUT ROWID;
  INSERT INTO group_log_new SELECT l.group_id, l.seq, l.epoch, l.kind, m.device, l.data, l.received_at, l.client_id
    FROM group_log l JOIN user_map m ON m.username = l.sender;

  CREATE TABLE inbox_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device     TEXT NOT NULL REFERENCES devices(id),
    kind       TEXT NOT NULL,
    group_id   TEXT,
    item       TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  INSERT INTO inbox_new SELECT i.id, m.device, i.kind, i.group_id, i.item, i.created_at
    FROM inbox i JOIN user_map m ON m.username = i.username;
  -- The inbox cursor never goes back: clients resume after the last id they saw, which may be above every item left.
  DELETE FROM sqlite_sequence WHERE name = 'inbox_new';
  INSERT INTO sqlite_sequence (name, seq) SELECT 'inbox_new', seq FROM sqlite_sequence WHERE name = 'inbox';

  CREATE TABLE inbox_expired_new (
    device  TEXT PRIMARY KEY REFERENCES devices(id),
    count   INTEGER NOT NULL,
    through INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO inbox_expired_new SELECT m.device, e.count, e.through
    FROM inbox_expired e JOIN user_map m ON m.username = e.username;

  DROP TABLE challenges;
  DROP TABLE sessions;
  DROP TABLE keypackages;
  DROP TABLE group_members;
  DROP TABLE group_log;
  DROP TABLE inbox;
  DROP TABLE inbox_expired;
  DROP TABLE groups;
  DROP TABLE users;
  ALTER TABLE challenges_new RENAME TO challenges;
  ALTER TABLE sessions_new RENAME TO sessions;
  ALTER TABLE keypackages_new RENAME TO keypackages;
  ALTER TABLE groups_new RENAME TO groups;
  ALTER TABLE group_members_new RENAME TO group_members;
  ALTER TABLE group_log_new RENAME TO group_log;
  ALTER TABLE inbox_new RENAME TO inbox;
  ALTER TABLE inbox_expired_new RENAME TO inbox_expired;
  DROP TABLE temp.user_map;

  CREATE INDEX challenges_device ON challenges(device, expires_at);
  CREATE INDEX sessions_device ON sessions(device);
  CREATE INDEX keypackages_pick ON keypackages(owner, cipher_suite, state, last_resort, seq);
  CREATE INDEX keypackages_expiry ON keypackages(not_after);
  CREATE INDEX group_members_device ON group_members(device);
  CREATE INDEX group_log_age ON group_log(received_at);
  CREATE UNIQUE INDEX group_log_client_id ON group_log(group_id, sender, client_id) WHERE client_id IS NOT NULL;
  CREATE INDEX inbox_device ON inbox(device, id);
  CREATE INDEX inbox_age ON inbox(created_at);
  `,
  // 7: external joins (issue 17). Each group keeps the GroupInfo of its current epoch (with external_pub and the
  // ratchet tree), written by the Commit that started that epoch (or the group's creation), for members' new devices
  // and members that lost sync to join by external Commit. group_info_epoch says which epoch it is of: a Commit that
  // carries none leaves an older one behind, which is never served.
  `
  ALTER TABLE groups ADD COLUMN group_info BLOB;
  ALTER TABLE groups ADD COLUMN group_info_epoch INTEGER;
  `,
]
