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
  // 2: groups (issue 6). A group's MLS state, its log cursor and its history change in one transaction per entry.
  `
  CREATE TABLE groups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    -- The last log entry processed: the stream resumes after it.
    last_seq INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed')),
    joined_at INTEGER NOT NULL,
    joined_by TEXT,
    -- A Commit posted and not yet known to be accepted, with the state it leads to: adopted when its echo arrives
    -- (the answer to the post was lost), dropped when the log shows it did not land.
    pending_commit BLOB,
    pending_state BLOB
  );
  CREATE INDEX groups_name ON groups (name);

  CREATE TABLE messages (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    own INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (group_id, seq)
  );

  -- The authentication service's memory: a user's signature key as first seen (DESIGN §3).
  CREATE TABLE pinned_keys (
    username TEXT PRIMARY KEY,
    signature_key BLOB NOT NULL,
    pinned_at INTEGER NOT NULL
  );
  `,
  // 3: the outbox (issue 6). An encrypted message waits here, saved with the state that encrypted it, until the
  // server has taken it; client_id makes a repeated post (after a crash or a lost answer) a no-op on the server.
  `
  CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    client_id BLOB NOT NULL UNIQUE,
    message BLOB NOT NULL,
    text TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  `,
  // 4: groups whose MLS state cannot follow them (retention deleted a Commit this daemon had not fetched). A flag
  // beside `status` rather than a new status value: changing the CHECK would mean rebuilding the table, which the
  // messages and outbox rows reference. Reported as status `out_of_sync` while `status` is 'active'.
  `
  ALTER TABLE groups ADD COLUMN out_of_sync INTEGER NOT NULL DEFAULT 0;
  `,
  // 5: key-use transparency and the adaptive pool (issue 14). Every key event the server sent about this profile's
  // KeyPackages (reserved, spent, released = lapsed unused) with who caused it; and per hour the largest number of
  // reservations between two maintenance passes (a burst the pool must outlast).
  `
  CREATE TABLE key_usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('reserved', 'spent', 'released')),
    requester TEXT NOT NULL,
    ref TEXT NOT NULL,
    last_resort INTEGER NOT NULL
  );
  CREATE INDEX key_usage_at ON key_usage (at);

  CREATE TABLE pool_bursts (
    hour INTEGER PRIMARY KEY,
    claims INTEGER NOT NULL,
    at INTEGER NOT NULL
  );
  `,
  // 6: invitation consent (issue 11 item 8). Profile settings by name, and the Welcomes that wait for
  // `group.accept` / `group.decline` under `invites = ask`: the Welcome's bytes (joined from on accept) and what
  // processing it told (group name, members), with the pool key it was made for (kept, private part included, until
  // accept or decline; the pool does not purge it meanwhile).
  `
  CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );

  CREATE TABLE invitations (
    group_id TEXT PRIMARY KEY,
    key_ref TEXT NOT NULL,
    inviter TEXT NOT NULL,
    name TEXT NOT NULL,
    -- JSON array of user names, in leaf order.
    members TEXT NOT NULL,
    -- The inbox item: the adding Commit's seq and epoch, and the Welcome MLSMessage.
    seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    welcome BLOB NOT NULL,
    received_at INTEGER NOT NULL
  );
  CREATE INDEX invitations_key ON invitations (key_ref);
  `,
  // 7: accounts and devices (issue 16). The profile is one device of an account: user id, device id and client id
  // (`<user-id>:<device-id>@<domain>`, the identity of its MLS credentials) as the server assigned them, and a login
  // key apart from the MLS signature key. A profile from before is device 1 of its account: its one key is both, and
  // the ids are learnt at its first login (NULL until then). Pins are per credential identity (a client id, or the bare
  // user name of a leaf from before devices, which maps to the account's first device); the user name pins carry
  // over. Pool keys made with the bare user name as identity are retired (maintenance withdraws them and makes
  // client-id keys); the last-resort key's not_after is moved back so the plan replaces it at once.
  `
  ALTER TABLE identity ADD COLUMN user_id TEXT;
  ALTER TABLE identity ADD COLUMN device_id TEXT;
  ALTER TABLE identity ADD COLUMN client_id TEXT;
  ALTER TABLE identity ADD COLUMN login_public BLOB;
  ALTER TABLE identity ADD COLUMN login_private BLOB;
  UPDATE identity SET login_public = signature_public, login_private = signature_private;

  CREATE TABLE device_pins (
    -- The credential identity: a client id, or a bare user name (a leaf from before devices).
    identity TEXT PRIMARY KEY,
    handle TEXT NOT NULL,
    -- What the directory said the identity is: NULL for user-name pins carried over, until looked up again.
    user_id TEXT,
    device_id TEXT,
    client_id TEXT,
    signature_key BLOB NOT NULL,
    pinned_at INTEGER NOT NULL
  );
  INSERT INTO device_pins (identity, handle, signature_key, pinned_at)
    SELECT username, username, signature_key, pinned_at FROM pinned_keys;
  DROP TABLE pinned_keys;

  -- The sending device of a message (NULL for messages stored before devices).
  ALTER TABLE messages ADD COLUMN sender_device TEXT;

  -- Recorded notifications in their new shape, so a frontend that subscribes with an older id can replay them.
  UPDATE events SET params = json_set(params, '$.addedDevices', json('[]'), '$.removedDevices', json('[]'))
    WHERE name = 'group.updated';
  UPDATE events SET params = json_set(params, '$.senderDevice', NULL) WHERE name = 'message.received';
  UPDATE events SET params = json_set(params, '$.clientId', json_extract(params, '$.username'))
    WHERE name = 'credential.refused';

  UPDATE keypackages SET state = 'expired' WHERE state IN ('created', 'available') AND last_resort = 0;
  UPDATE keypackages SET state = 'expired', not_after = created_at WHERE state IN ('created', 'available') AND last_resort = 1;
  `,
  // 8: external joins (issue 17). The last log entry this device had processed of a group when it went out of sync,
  // so that a rejoin can tell (group.historyLost) which entries it never read.
  `
  ALTER TABLE groups ADD COLUMN sync_lost_after INTEGER;
  -- Recorded notifications in their new shape (group.historyLost says whether it follows a rejoin).
  UPDATE events SET params = json_set(params, '$.rejoined', json('false')) WHERE name = 'group.historyLost';
  `,
  // 9: a group's ratchet tree apart from the rest of its state (daemon/mls/groupState.ts): the tree changes only with
  // the epoch, the rest with every message. Trees are kept by tree hash, one row each for the state and the Commit in
  // flight. States written before keep the tree inside (tree_hash NULL) until their next save.
  `
  ALTER TABLE groups ADD COLUMN tree_hash BLOB;
  ALTER TABLE groups ADD COLUMN pending_tree_hash BLOB;
  CREATE TABLE group_trees (
    -- Deferred: a new group's tree is stored before its row, in the same transaction.
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    hash BLOB NOT NULL,
    tree BLOB NOT NULL,
    UNIQUE (group_id, hash)
  );
  `,
]
