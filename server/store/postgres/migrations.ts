/**
 * Versioned schema of the server's PostgreSQL database, as for SQLite (../migrations.ts): each entry runs once, in
 * order, in one transaction, and `schema_version` counts those applied. Never edit a shipped migration: append one.
 * Migration 1 is the schema SQLite reached at its migration 6 (accounts and devices): PostgreSQL has no older
 * databases to carry. Times are milliseconds (BIGINT), ids and refs TEXT, keys and messages BYTEA.
 */
export const pgMigrations: readonly string[] = [
  // 1: accounts and devices, authentication, key directory, delivery service
  `
  CREATE TABLE accounts (
    user_id    TEXT PRIMARY KEY,
    handle     TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
  );

  -- n: creation order ("oldest device first"). removed_at NULL: active.
  CREATE TABLE devices (
    n          BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL REFERENCES accounts(user_id),
    client_id  TEXT NOT NULL UNIQUE,
    login_key  BYTEA NOT NULL,
    mls_key    BYTEA,
    created_at BIGINT NOT NULL,
    removed_at BIGINT
  );
  CREATE INDEX devices_user ON devices(user_id, n);
  CREATE INDEX devices_login_key ON devices(login_key);

  CREATE TABLE link_codes (
    code_hash  BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES accounts(user_id),
    created_by TEXT NOT NULL REFERENCES devices(id),
    expires_at BIGINT NOT NULL
  );
  CREATE INDEX link_codes_user ON link_codes(user_id, expires_at);

  CREATE TABLE challenges (
    id         TEXT PRIMARY KEY,
    device     TEXT NOT NULL REFERENCES devices(id),
    nonce      BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
  );
  CREATE INDEX challenges_device ON challenges(device, expires_at);

  CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY,
    device     TEXT NOT NULL REFERENCES devices(id),
    expires_at BIGINT NOT NULL
  );
  CREATE INDEX sessions_device ON sessions(device);

  -- state: available | reserved | spent | retired (a replaced last-resort key); seq: upload order
  CREATE TABLE keypackages (
    ref            TEXT PRIMARY KEY,
    owner          TEXT NOT NULL REFERENCES devices(id),
    cipher_suite   INTEGER NOT NULL,
    data           BYTEA NOT NULL,
    not_after      BIGINT NOT NULL,
    last_resort    BOOLEAN NOT NULL,
    state          TEXT NOT NULL,
    uploaded_at    BIGINT NOT NULL,
    seq            BIGSERIAL NOT NULL,
    reservation_id TEXT,
    reserved_by    TEXT,
    reserved_until BIGINT,
    spent_at       BIGINT
  );
  CREATE INDEX keypackages_pick ON keypackages(owner, cipher_suite, state, last_resort, seq);
  CREATE INDEX keypackages_expiry ON keypackages(not_after);

  -- every HPKE init key ever accepted, so that none is accepted twice (RFC 9420 §16.8)
  CREATE TABLE init_keys (
    init_key BYTEA PRIMARY KEY,
    ref      TEXT NOT NULL
  );

  CREATE TABLE reservations (
    id         TEXT PRIMARY KEY,
    ref        TEXT NOT NULL,
    owner      TEXT NOT NULL,
    requester  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    spent_at   BIGINT,
    lapsed_at  BIGINT
  );
  CREATE INDEX reservations_expiry ON reservations(expires_at);
  CREATE INDEX reservations_open ON reservations(owner, expires_at) WHERE spent_at IS NULL AND lapsed_at IS NULL;
  CREATE INDEX reservations_open_expiry ON reservations(expires_at) WHERE spent_at IS NULL AND lapsed_at IS NULL;

  CREATE TABLE audit (
    id             BIGSERIAL PRIMARY KEY,
    at             BIGINT NOT NULL,
    action         TEXT NOT NULL,
    owner          TEXT NOT NULL,
    ref            TEXT,
    actor          TEXT,
    reservation_id TEXT
  );
  CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$;
  CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

  CREATE TABLE groups (
    id         TEXT PRIMARY KEY,           -- MLS group id, canonical base64url
    epoch      BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL,            -- kept here so that seqs never repeat after retention deletes entries
    created_by TEXT NOT NULL REFERENCES devices(id),
    created_at BIGINT NOT NULL,
    pruned_seq BIGINT NOT NULL DEFAULT 0,  -- every entry with seq <= pruned_seq was deleted by retention
    -- The GroupInfo of the current epoch for external joins, written by the Commit that started it (or the creation);
    -- one of an older epoch (a Commit that carried none) is never served.
    group_info       BYTEA,
    group_info_epoch BIGINT
  );

  -- removed_seq NULL: on the roster. Otherwise the device may still read entries up to the removing Commit.
  CREATE TABLE group_members (
    group_id    TEXT NOT NULL REFERENCES groups(id),
    device      TEXT NOT NULL REFERENCES devices(id),
    joined_seq  BIGINT NOT NULL,
    removed_seq BIGINT,
    PRIMARY KEY (group_id, device)
  );
  CREATE INDEX group_members_device ON group_members(device);

  CREATE TABLE group_log (
    group_id    TEXT NOT NULL REFERENCES groups(id),
    seq         BIGINT NOT NULL,
    epoch       BIGINT NOT NULL,
    kind        TEXT NOT NULL,             -- commit | proposal | application
    sender      TEXT NOT NULL,             -- the device
    data        BYTEA NOT NULL,
    received_at BIGINT NOT NULL,
    client_id   BYTEA,
    PRIMARY KEY (group_id, seq)
  );
  CREATE INDEX group_log_age ON group_log(received_at);
  CREATE UNIQUE INDEX group_log_client_id ON group_log(group_id, sender, client_id) WHERE client_id IS NOT NULL;

  -- Inbox ids come from one sequence, drawn only while holding the device's inbox_heads row (inboxWriter.ts): a
  -- device's ids then grow in commit order, so a reader past id N never finds a smaller id committed later.
  CREATE SEQUENCE inbox_ids;
  CREATE TABLE inbox_heads (
    device TEXT PRIMARY KEY REFERENCES devices(id)
  );
  CREATE TABLE inbox (
    id         BIGINT PRIMARY KEY,
    device     TEXT NOT NULL REFERENCES devices(id),
    kind       TEXT NOT NULL,
    group_id   TEXT,                       -- welcome and removed items
    item       TEXT NOT NULL,              -- the InboxItem as JSON, sent as is
    created_at BIGINT NOT NULL
  );
  CREATE INDEX inbox_device ON inbox(device, id);
  CREATE INDEX inbox_age ON inbox(created_at);

  CREATE TABLE inbox_expired (
    device  TEXT PRIMARY KEY REFERENCES devices(id),
    count   BIGINT NOT NULL,
    through BIGINT NOT NULL
  );

  -- rate-limit token buckets, shared by every instance (rateBuckets.ts); a full bucket is deleted
  CREATE TABLE rate_buckets (
    name       TEXT NOT NULL,
    key        TEXT NOT NULL,
    tokens     DOUBLE PRECISION NOT NULL,
    at         BIGINT NOT NULL,
    burst      DOUBLE PRECISION NOT NULL,
    per_minute DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (name, key)
  );

  -- services/rateLimiter.ts's takeTokens in one round trip: refills the buckets (locked in (name, key) order), takes
  -- n of each if all have them; answers each bucket's wait in ms (0: it had them). The refill is rateLimiter.ts's
  -- refill(), in SQL.
  CREATE FUNCTION take_tokens(names TEXT[], keys TEXT[], bursts DOUBLE PRECISION[], per_minutes DOUBLE PRECISION[],
                              n DOUBLE PRECISION, now_ms BIGINT) RETURNS DOUBLE PRECISION[] LANGUAGE plpgsql AS $$
  DECLARE
    i INT;
    b RECORD;
    held DOUBLE PRECISION[] := '{}';
    waits DOUBLE PRECISION[] := '{}';
    cost DOUBLE PRECISION;
    per_ms DOUBLE PRECISION;
    ok BOOLEAN := true;
    ord INT[];
  BEGIN
    SELECT array_agg(x ORDER BY names[x] COLLATE "C", keys[x] COLLATE "C") INTO ord FROM generate_subscripts(names, 1) AS x;
    FOREACH i IN ARRAY ord LOOP
      INSERT INTO rate_buckets AS r (name, key, tokens, at, burst, per_minute)
        VALUES (names[i], keys[i], bursts[i], now_ms, bursts[i], per_minutes[i])
        ON CONFLICT (name, key) DO UPDATE SET name = excluded.name
        RETURNING r.tokens, r.at INTO b;
      cost := least(n, bursts[i]);
      per_ms := per_minutes[i] / 60000;
      held[i] := least(bursts[i], b.tokens + greatest(0, now_ms - b.at) * per_ms);
      IF held[i] >= cost THEN
        waits[i] := 0;
      ELSE
        ok := false;
        waits[i] := CASE WHEN per_ms > 0 THEN ceil((cost - held[i]) / per_ms) ELSE 'Infinity' END;
      END IF;
    END LOOP;
    IF ok THEN
      FOREACH i IN ARRAY ord LOOP
        UPDATE rate_buckets SET tokens = held[i] - least(n, bursts[i]), at = now_ms, burst = bursts[i],
                                per_minute = per_minutes[i]
          WHERE name = names[i] AND key = keys[i];
      END LOOP;
    END IF;
    RETURN waits;
  END $$;
  `,

  // 2: the key directory's reserve and spend, a post to a group's log, and the inbox write, as functions: one round
  // trip each instead of five to ten (the stores say when they call them). Each does what the TypeScript it replaces
  // did, in the same order.
  `
  -- Tx.writeInbox: locks the inbox heads of the devices (sorted, so that two writers never wait on each other), then
  -- draws the items' ids, so that a device's ids grow in commit order.
  CREATE FUNCTION inbox_write(devices TEXT[], kinds TEXT[], group_ids TEXT[], items TEXT[], created BIGINT[])
    RETURNS VOID LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM 1 FROM inbox_heads WHERE device = ANY(devices) ORDER BY device FOR UPDATE;
    INSERT INTO inbox (id, device, kind, group_id, item, created_at)
      SELECT nextval('inbox_ids'), * FROM unnest(devices, kinds, group_ids, items, created);
  END $$;

  -- PgDeliveryStore.append: a message or proposal from the sender, once per client id. Answers 'duplicate' (the seq of
  -- the post stored with that client id), 'group_not_found', 'not_member', 'epoch_conflict' (a future epoch; with the
  -- group's), all changing nothing, or 'appended' with the entry's seq, under the group's row lock.
  CREATE FUNCTION append_entry(gid TEXT, sender TEXT, msg_epoch BIGINT, msg_kind TEXT, msg_data BYTEA, now_ms BIGINT,
                               cid BYTEA)
    RETURNS TABLE (outcome TEXT, seq BIGINT, group_epoch BIGINT) LANGUAGE plpgsql AS $$
  DECLARE
    last BIGINT;
  BEGIN
    IF cid IS NOT NULL THEN
      SELECT l.seq INTO seq FROM group_log l WHERE l.group_id = gid AND l.sender = append_entry.sender
        AND l.client_id = cid;
      IF FOUND THEN
        outcome := 'duplicate';
        RETURN NEXT;
        RETURN;
      END IF;
    END IF;
    SELECT g.epoch, g.last_seq INTO group_epoch, last FROM groups g WHERE g.id = gid FOR UPDATE;
    IF NOT FOUND THEN
      outcome := 'group_not_found';
    ELSIF NOT EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = gid AND m.device = append_entry.sender
                      AND m.removed_seq IS NULL) THEN
      outcome := 'not_member';
    ELSIF msg_epoch > group_epoch THEN
      outcome := 'epoch_conflict';
    ELSE
      seq := last + 1;
      INSERT INTO group_log (group_id, seq, epoch, kind, sender, data, received_at, client_id)
        VALUES (gid, seq, msg_epoch, msg_kind, append_entry.sender, msg_data, now_ms, cid);
      UPDATE groups SET last_seq = seq WHERE id = gid;
      outcome := 'appended';
    END IF;
    RETURN NEXT;
  END $$;

  -- PgStore.reserve when none of the owners has a lapsed reservation to release (it raises MLSLP then, changing
  -- nothing, and the store takes the path that releases them). One key per owner: the oldest available ordinary key
  -- not locked by another reserver, else the last-resort key; a reservation, the audit row and the owner's
  -- keyReserved item (and poolLow below the watermark) for each. Answers the owners that got one; none: nothing changed.
  CREATE FUNCTION reserve_keys(owners TEXT[], suite INTEGER, requester TEXT, by_handle TEXT, by_client TEXT,
                               ids TEXT[], now_ms BIGINT, expires BIGINT, low_watermark INTEGER)
    RETURNS TABLE (owner TEXT, ref TEXT, data BYTEA, reservation_id TEXT, last_resort BOOLEAN, remaining INTEGER)
    LANGUAGE plpgsql AS $$
  DECLARE
    i INT;
    k RECORD;
    devs TEXT[] := '{}';
    kinds TEXT[] := '{}';
    items TEXT[] := '{}';
  BEGIN
    IF EXISTS (SELECT 1 FROM reservations r WHERE r.owner = ANY(owners) AND r.expires_at <= now_ms
               AND r.spent_at IS NULL AND r.lapsed_at IS NULL) THEN
      RAISE EXCEPTION 'lapsed reservations to release first' USING ERRCODE = 'MLSLP';
    END IF;
    FOR i IN 1 .. cardinality(owners) LOOP
      last_resort := false;
      UPDATE keypackages AS kp SET state = 'reserved', reservation_id = ids[i], reserved_by = requester,
                                   reserved_until = expires
        WHERE kp.ref = (SELECT p.ref FROM keypackages p
                        WHERE p.owner = owners[i] AND p.cipher_suite = suite AND p.state = 'available'
                          AND NOT p.last_resort AND p.not_after > now_ms
                        ORDER BY p.seq LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING kp.ref, kp.data INTO k;
      IF NOT FOUND THEN
        SELECT p.ref, p.data INTO k FROM keypackages p
          WHERE p.owner = owners[i] AND p.cipher_suite = suite AND p.last_resort AND p.state = 'available'
            AND p.not_after > now_ms;
        CONTINUE WHEN NOT FOUND;
        last_resort := true;
      END IF;
      INSERT INTO reservations (id, ref, owner, requester, created_at, expires_at)
        VALUES (ids[i], k.ref, owners[i], requester, now_ms, expires);
      INSERT INTO audit (at, action, owner, ref, actor, reservation_id)
        VALUES (now_ms, 'reserve', owners[i], k.ref, requester, ids[i]);
      SELECT count(*) INTO remaining FROM keypackages p
        WHERE p.owner = owners[i] AND p.cipher_suite = suite AND p.state = 'available' AND NOT p.last_resort
          AND p.not_after > now_ms;
      devs := devs || owners[i];
      kinds := kinds || 'keyReserved'::TEXT;
      items := items || json_build_object('kind', 'keyReserved', 'ref', k.ref, 'by', by_handle,
                                          'byClientId', by_client, 'lastResort', last_resort,
                                          'remainingAvailable', remaining)::TEXT;
      IF remaining < low_watermark THEN
        devs := devs || owners[i];
        kinds := kinds || 'poolLow'::TEXT;
        items := items || json_build_object('kind', 'poolLow', 'available', remaining)::TEXT;
      END IF;
      owner := owners[i];
      ref := k.ref;
      data := k.data;
      reservation_id := ids[i];
      RETURN NEXT;
    END LOOP;
    IF cardinality(devs) > 0 THEN
      PERFORM inbox_write(devs, kinds, array_fill(NULL::TEXT, ARRAY[cardinality(devs)]), items,
                          array_fill(now_ms, ARRAY[cardinality(devs)]));
    END IF;
  END $$;

  -- keys.ts's spendKey: locks the key and the reservation; when checkSpend (../keySpending.ts) would let the spend
  -- through, spends them (a last-resort key only its reservation), with the audit row, the owner's keySpent item if
  -- write_item (a transaction that goes on writes it last, with its other items), and answers spent = true.
  -- Otherwise changes nothing and answers what it locked, for checkSpend to name the refusal.
  CREATE FUNCTION spend_key(key_ref TEXT, rid TEXT, requester TEXT, by_handle TEXT, by_client TEXT, now_ms BIGINT,
                            write_item BOOLEAN)
    RETURNS TABLE (spent BOOLEAN, owner TEXT, key_state TEXT, last_resort BOOLEAN, key_reservation TEXT,
                   r_ref TEXT, r_requester TEXT, r_expires BIGINT, r_spent BIGINT)
    LANGUAGE plpgsql AS $$
  BEGIN
    SELECT kp.owner, kp.state, kp.last_resort, kp.reservation_id INTO owner, key_state, last_resort, key_reservation
      FROM keypackages kp WHERE kp.ref = key_ref FOR UPDATE;
    SELECT r.ref, r.requester, r.expires_at, r.spent_at INTO r_ref, r_requester, r_expires, r_spent
      FROM reservations r WHERE r.id = rid FOR UPDATE;
    spent := coalesce(owner IS NOT NULL AND r_ref = key_ref AND r_requester = requester AND key_state <> 'spent'
                      AND r_spent IS NULL AND r_expires > now_ms AND (last_resort OR key_reservation = rid), false);
    IF spent THEN
      IF NOT last_resort THEN
        UPDATE keypackages SET state = 'spent', spent_at = now_ms WHERE ref = key_ref;
      END IF;
      UPDATE reservations SET spent_at = now_ms WHERE id = rid;
      INSERT INTO audit (at, action, owner, ref, actor, reservation_id)
        VALUES (now_ms, 'spend', owner, key_ref, requester, rid);
      IF write_item THEN
        PERFORM inbox_write(ARRAY[owner], ARRAY['keySpent'], ARRAY[NULL::TEXT],
                            ARRAY[json_build_object('kind', 'keySpent', 'ref', key_ref, 'by', by_handle,
                                                    'byClientId', by_client, 'lastResort', last_resort)::TEXT],
                            ARRAY[now_ms]);
      END IF;
    END IF;
    RETURN NEXT;
  END $$;
  `,

  // 3: reserves, spends and posts many at a time: PgStore hands over the reserves and spends that reach it in one
  // turn of the event loop together (callBatcher.ts), and a group's batch (groupBatcher.ts) its posts, one statement
  // for all of them instead of one each. Element i of the arrays is one key, or one post; one alone is a call with
  // its own elements only. They replace migration 2's reserve_keys, spend_key and append_entry, and do what those
  // did, element by element.
  `
  DROP FUNCTION reserve_keys(TEXT[], INTEGER, TEXT, TEXT, TEXT, TEXT[], BIGINT, BIGINT, INTEGER);
  DROP FUNCTION spend_key(TEXT, TEXT, TEXT, TEXT, TEXT, BIGINT, BOOLEAN);
  DROP FUNCTION append_entry(TEXT, TEXT, BIGINT, TEXT, BYTEA, BIGINT, BYTEA);
  DROP FUNCTION take_tokens(TEXT[], TEXT[], DOUBLE PRECISION[], DOUBLE PRECISION[], DOUBLE PRECISION, BIGINT);

  -- rateBuckets.ts: the rate-limit takes of many requests at once. Element i is bucket (names[i], keys[i]) of request
  -- reqs[i] (elements of one request next to each other, requests in order), which takes ns[i] tokens of it. Locks
  -- the buckets once each (in (name, key) order, so two calls never wait on each other), refills them at now_ms,
  -- then takes each request's tokens from all its buckets, or none when any is short (then it waits: its element's
  -- answer is the milliseconds until the bucket will have them; 0 otherwise), and writes each bucket taken from
  -- once.
  CREATE FUNCTION take_tokens(reqs INTEGER[], names TEXT[], keys TEXT[], bursts DOUBLE PRECISION[],
                              per_minutes DOUBLE PRECISION[], ns DOUBLE PRECISION[], now_ms BIGINT)
    RETURNS DOUBLE PRECISION[] LANGUAGE plpgsql AS $$
  DECLARE
    i INT;
    j INT;
    first INT := 1;
    b RECORD;
    held DOUBLE PRECISION[] := '{}';
    taken BOOLEAN[] := '{}';
    slot INT[] := '{}';
    waits DOUBLE PRECISION[] := '{}';
    ok BOOLEAN;
    per_ms DOUBLE PRECISION;
  BEGIN
    -- Each bucket's slot: the first element that names it, its refilled tokens in held[slot].
    FOR i IN SELECT x FROM generate_subscripts(names, 1) AS x ORDER BY names[x] COLLATE "C", keys[x] COLLATE "C", x
    LOOP
      IF i <> first AND names[i] = names[first] AND keys[i] = keys[first] THEN
        slot[i] := first;
        CONTINUE;
      END IF;
      first := i;
      slot[i] := i;
      INSERT INTO rate_buckets AS r (name, key, tokens, at, burst, per_minute)
        VALUES (names[i], keys[i], bursts[i], now_ms, bursts[i], per_minutes[i])
        ON CONFLICT (name, key) DO UPDATE SET name = excluded.name
        RETURNING r.tokens, r.at INTO b;
      held[i] := least(bursts[i], b.tokens + greatest(0, now_ms - b.at) * per_minutes[i] / 60000);
      taken[i] := false;
    END LOOP;
    i := 1;
    WHILE i <= cardinality(reqs) LOOP
      first := i;
      ok := true;
      WHILE i <= cardinality(reqs) AND reqs[i] = reqs[first] LOOP
        per_ms := per_minutes[i] / 60000;
        IF held[slot[i]] >= least(ns[i], bursts[i]) THEN
          waits[i] := 0;
        ELSE
          ok := false;
          waits[i] := CASE WHEN per_ms > 0 THEN ceil((least(ns[i], bursts[i]) - held[slot[i]]) / per_ms)
                           ELSE 'Infinity' END;
        END IF;
        i := i + 1;
      END LOOP;
      IF ok THEN
        FOR j IN first .. i - 1 LOOP
          held[slot[j]] := held[slot[j]] - least(ns[j], bursts[j]);
          taken[slot[j]] := true;
        END LOOP;
      END IF;
    END LOOP;
    FOR i IN 1 .. cardinality(names) LOOP
      CONTINUE WHEN slot[i] <> i OR NOT taken[i];
      UPDATE rate_buckets SET tokens = held[i], at = now_ms, burst = bursts[i], per_minute = per_minutes[i]
        WHERE name = names[i] AND key = keys[i];
    END LOOP;
    RETURN waits;
  END $$;

  -- PgDeliveryStore: messages and proposals to group gid, under the group's row lock (taken first: a group's seqs are
  -- drawn and committed in order). Row i answers post i: 'duplicate' (the seq of the post its sender stored with
  -- that client id, in this call or before), 'group_not_found', 'not_member', 'epoch_conflict' (a future epoch; with
  -- the group's), each changing nothing, or 'appended' with the entry's seq.
  CREATE FUNCTION append_entries(gid TEXT, senders TEXT[], epochs BIGINT[], kinds TEXT[], datas BYTEA[],
                                 nows BIGINT[], cids BYTEA[])
    RETURNS TABLE (i INTEGER, outcome TEXT, seq BIGINT, group_epoch BIGINT) LANGUAGE plpgsql AS $$
  DECLARE
    last BIGINT;
    first BIGINT;
    exists_group BOOLEAN;
  BEGIN
    SELECT g.epoch, g.last_seq INTO group_epoch, last FROM groups g WHERE g.id = gid FOR UPDATE;
    exists_group := FOUND;
    first := last;
    -- A query loop: it sets the OUT column i (an integer loop would declare a variable of its own).
    FOR i IN SELECT generate_subscripts(senders, 1) LOOP
      outcome := NULL;
      seq := NULL;
      IF cids[i] IS NOT NULL THEN
        SELECT l.seq INTO seq FROM group_log l WHERE l.group_id = gid AND l.sender = senders[i]
          AND l.client_id = cids[i];
        IF FOUND THEN
          outcome := 'duplicate';
        END IF;
      END IF;
      IF outcome IS NOT NULL THEN
        NULL;
      ELSIF NOT exists_group THEN
        outcome := 'group_not_found';
      ELSIF NOT EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = gid AND m.device = senders[i]
                        AND m.removed_seq IS NULL) THEN
        outcome := 'not_member';
      ELSIF epochs[i] > group_epoch THEN
        outcome := 'epoch_conflict';
      ELSE
        last := last + 1;
        seq := last;
        INSERT INTO group_log (group_id, seq, epoch, kind, sender, data, received_at, client_id)
          VALUES (gid, seq, epochs[i], kinds[i], senders[i], datas[i], nows[i], cids[i]);
        outcome := 'appended';
      END IF;
      RETURN NEXT;
    END LOOP;
    IF last > first THEN
      UPDATE groups SET last_seq = last WHERE id = gid;
    END IF;
  END $$;

  -- PgStore.reserve: one key of owners[i] (cipher suite suites[i]) for requesters[i], the oldest available one
  -- (SKIP LOCKED: never one another transaction is taking), else the owner's last-resort key, else none (no row).
  -- Reservation ids[i] lasts until expires[i]. Audit rows, and the owner's keyReserved (and poolLow) items, written
  -- together at the end. When an owner has lapsed reservations, raises MLSLP having changed nothing: they are
  -- released first, in a transaction of that request's own.
  CREATE FUNCTION reserve_keys(owners TEXT[], suites INTEGER[], requesters TEXT[], by_handles TEXT[],
                               by_clients TEXT[], ids TEXT[], nows BIGINT[], expires BIGINT[], low_watermarks INTEGER[])
    RETURNS TABLE (owner TEXT, ref TEXT, data BYTEA, reservation_id TEXT, last_resort BOOLEAN, remaining INTEGER)
    LANGUAGE plpgsql AS $$
  DECLARE
    i INT;
    k RECORD;
    devs TEXT[] := '{}';
    kinds TEXT[] := '{}';
    items TEXT[] := '{}';
    created BIGINT[] := '{}';
  BEGIN
    IF EXISTS (SELECT 1 FROM generate_subscripts(owners, 1) AS x
               WHERE EXISTS (SELECT 1 FROM reservations r WHERE r.owner = owners[x] AND r.expires_at <= nows[x]
                                                           AND r.spent_at IS NULL AND r.lapsed_at IS NULL)) THEN
      RAISE EXCEPTION 'lapsed reservations to release first' USING ERRCODE = 'MLSLP';
    END IF;
    FOR i IN 1 .. cardinality(owners) LOOP
      last_resort := false;
      UPDATE keypackages AS kp SET state = 'reserved', reservation_id = ids[i], reserved_by = requesters[i],
                                   reserved_until = expires[i]
        WHERE kp.ref = (SELECT p.ref FROM keypackages p
                        WHERE p.owner = owners[i] AND p.cipher_suite = suites[i] AND p.state = 'available'
                          AND NOT p.last_resort AND p.not_after > nows[i]
                        ORDER BY p.seq LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING kp.ref, kp.data INTO k;
      IF NOT FOUND THEN
        SELECT p.ref, p.data INTO k FROM keypackages p
          WHERE p.owner = owners[i] AND p.cipher_suite = suites[i] AND p.last_resort AND p.state = 'available'
            AND p.not_after > nows[i];
        CONTINUE WHEN NOT FOUND;
        last_resort := true;
      END IF;
      INSERT INTO reservations (id, ref, owner, requester, created_at, expires_at)
        VALUES (ids[i], k.ref, owners[i], requesters[i], nows[i], expires[i]);
      INSERT INTO audit (at, action, owner, ref, actor, reservation_id)
        VALUES (nows[i], 'reserve', owners[i], k.ref, requesters[i], ids[i]);
      SELECT count(*) INTO remaining FROM keypackages p
        WHERE p.owner = owners[i] AND p.cipher_suite = suites[i] AND p.state = 'available' AND NOT p.last_resort
          AND p.not_after > nows[i];
      devs := devs || owners[i];
      kinds := kinds || 'keyReserved'::TEXT;
      items := items || json_build_object('kind', 'keyReserved', 'ref', k.ref, 'by', by_handles[i],
                                          'byClientId', by_clients[i], 'lastResort', last_resort,
                                          'remainingAvailable', remaining)::TEXT;
      created := created || nows[i];
      IF remaining < low_watermarks[i] THEN
        devs := devs || owners[i];
        kinds := kinds || 'poolLow'::TEXT;
        items := items || json_build_object('kind', 'poolLow', 'available', remaining)::TEXT;
        created := created || nows[i];
      END IF;
      owner := owners[i];
      ref := k.ref;
      data := k.data;
      reservation_id := ids[i];
      RETURN NEXT;
    END LOOP;
    IF cardinality(devs) > 0 THEN
      PERFORM inbox_write(devs, kinds, array_fill(NULL::TEXT, ARRAY[cardinality(devs)]), items, created);
    END IF;
  END $$;

  -- keys.ts: spends refs[i] under reservation rids[i] for requesters[i], as migration 2's spend_key did for one (row
  -- i answers element i): locks the key and the reservation; when checkSpend (../keySpending.ts) would let the spend
  -- through, spends them (a last-resort key only its reservation) with the audit row, and answers spent = true;
  -- otherwise changes nothing and answers what it locked, for checkSpend to name the refusal. With write_items, the
  -- owners' keySpent items are written at the end (a transaction that goes on writes them last, with its others).
  -- Keys are locked in ref order, so two calls that spend the same keys never wait on each other.
  CREATE FUNCTION spend_keys(refs TEXT[], rids TEXT[], requesters TEXT[], by_handles TEXT[], by_clients TEXT[],
                             nows BIGINT[], write_items BOOLEAN)
    RETURNS TABLE (i INTEGER, spent BOOLEAN, owner TEXT, key_state TEXT, last_resort BOOLEAN, key_reservation TEXT,
                   r_ref TEXT, r_requester TEXT, r_expires BIGINT, r_spent BIGINT)
    LANGUAGE plpgsql AS $$
  DECLARE
    devs TEXT[] := '{}';
    items TEXT[] := '{}';
    created BIGINT[] := '{}';
  BEGIN
    FOR i IN SELECT x FROM generate_subscripts(refs, 1) AS x ORDER BY refs[x] COLLATE "C", x LOOP
      SELECT kp.owner, kp.state, kp.last_resort, kp.reservation_id INTO owner, key_state, last_resort, key_reservation
        FROM keypackages kp WHERE kp.ref = refs[i] FOR UPDATE;
      SELECT r.ref, r.requester, r.expires_at, r.spent_at INTO r_ref, r_requester, r_expires, r_spent
        FROM reservations r WHERE r.id = rids[i] FOR UPDATE;
      spent := coalesce(owner IS NOT NULL AND r_ref = refs[i] AND r_requester = requesters[i] AND key_state <> 'spent'
                        AND r_spent IS NULL AND r_expires > nows[i] AND (last_resort OR key_reservation = rids[i]),
                        false);
      IF spent THEN
        IF NOT last_resort THEN
          UPDATE keypackages SET state = 'spent', spent_at = nows[i] WHERE ref = refs[i];
        END IF;
        UPDATE reservations SET spent_at = nows[i] WHERE id = rids[i];
        INSERT INTO audit (at, action, owner, ref, actor, reservation_id)
          VALUES (nows[i], 'spend', owner, refs[i], requesters[i], rids[i]);
        IF write_items THEN
          devs := devs || owner;
          items := items || json_build_object('kind', 'keySpent', 'ref', refs[i], 'by', by_handles[i],
                                              'byClientId', by_clients[i], 'lastResort', last_resort)::TEXT;
          created := created || nows[i];
        END IF;
      END IF;
      RETURN NEXT;
    END LOOP;
    IF cardinality(devs) > 0 THEN
      PERFORM inbox_write(devs, array_fill('keySpent'::TEXT, ARRAY[cardinality(devs)]),
                          array_fill(NULL::TEXT, ARRAY[cardinality(devs)]), items, created);
    END IF;
  END $$;
  `,
]
