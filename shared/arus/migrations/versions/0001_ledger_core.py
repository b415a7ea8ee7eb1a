"""Ledger core: ledgers, keys, accounts, balances, entries, postings, idempotency, outbox.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE ledgers (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Gap-free per-ledger entry counter; bumped under the ledger row lock by the posting path.
    last_ledger_seq bigint NOT NULL DEFAULT 0 CHECK (last_ledger_seq >= 0),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    ledger_id   uuid NOT NULL REFERENCES ledgers (id),
    scope       text NOT NULL CHECK (scope IN ('read', 'write')),
    -- sha256 of the secret part; the key itself is never stored.
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_ledger_idx ON api_keys (ledger_id);

CREATE TABLE accounts (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ledger_id      uuid NOT NULL REFERENCES ledgers (id),
    code           text NOT NULL CHECK (code ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    type           text NOT NULL
                   CHECK (type IN ('asset', 'expense', 'liability', 'equity', 'revenue')),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    allow_negative boolean NOT NULL DEFAULT false,
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT accounts_ledger_code_key UNIQUE (ledger_id, code),
    CONSTRAINT accounts_ledger_id_key UNIQUE (ledger_id, id)
);

-- Materialized balance per account, signed in the account's normal direction. Updated only by
-- arus_write_entry, under row locks taken in ascending account id order.
CREATE TABLE balances (
    account_id     uuid PRIMARY KEY,
    ledger_id      uuid NOT NULL,
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    normal_side    text NOT NULL CHECK (normal_side IN ('debit', 'credit')),
    allow_negative boolean NOT NULL,
    balance        bigint NOT NULL DEFAULT 0,
    posting_count  bigint NOT NULL DEFAULT 0 CHECK (posting_count >= 0),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (ledger_id, account_id) REFERENCES accounts (ledger_id, id),
    -- Defence in depth behind the engine's own overdraft check.
    CONSTRAINT balances_non_negative CHECK (allow_negative OR balance >= 0)
);
CREATE INDEX balances_ledger_idx ON balances (ledger_id);

CREATE TABLE entries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ledger_id       uuid NOT NULL REFERENCES ledgers (id),
    ledger_seq      bigint NOT NULL CHECK (ledger_seq >= 1),
    description     text CHECK (length(description) <= 1000),
    effective_date  date NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    -- A reversal points at its original; UNIQUE makes a second reversal impossible. The
    -- original's `reversed_by` is derived from this column, so entries are never updated.
    reverses        uuid,
    idempotency_key text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT entries_ledger_seq_key UNIQUE (ledger_id, ledger_seq),
    CONSTRAINT entries_ledger_id_key UNIQUE (ledger_id, id),
    CONSTRAINT entries_reverses_key UNIQUE (reverses),
    CONSTRAINT entries_reverses_fkey FOREIGN KEY (ledger_id, reverses)
        REFERENCES entries (ledger_id, id),
    CONSTRAINT entries_not_self_reversal CHECK (reverses IS DISTINCT FROM id)
);

CREATE TABLE postings (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id      uuid NOT NULL,
    ledger_id     uuid NOT NULL,
    account_id    uuid NOT NULL,
    position      smallint NOT NULL CHECK (position BETWEEN 1 AND 100),
    direction     text NOT NULL CHECK (direction IN ('debit', 'credit')),
    amount        bigint NOT NULL CHECK (amount > 0),
    currency      text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- The account's balance right after this posting, computed under the row lock.
    balance_after bigint NOT NULL,
    FOREIGN KEY (ledger_id, entry_id) REFERENCES entries (ledger_id, id),
    FOREIGN KEY (ledger_id, account_id) REFERENCES accounts (ledger_id, id),
    CONSTRAINT postings_entry_position_key UNIQUE (entry_id, position)
);
CREATE INDEX postings_account_idx ON postings (account_id, id DESC);

CREATE TABLE idempotency_keys (
    ledger_id   uuid NOT NULL REFERENCES ledgers (id),
    key         text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- sha256 over method, route and canonical body: same key + other request = conflict.
    fingerprint text NOT NULL,
    status_code smallint,
    response    jsonb,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (ledger_id, key)
);

CREATE TABLE outbox_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    ledger_id    uuid NOT NULL REFERENCES ledgers (id),
    event_type   text NOT NULL CHECK (event_type ~ '^[a-z]+\\.[a-z_]+$'),
    ledger_seq   bigint,
    occurred_at  timestamptz NOT NULL,
    -- The whole SPEC §4 envelope, exactly as it is published.
    envelope     jsonb NOT NULL,
    published_at timestamptz
);
CREATE INDEX outbox_events_unpublished_idx ON outbox_events (id) WHERE published_at IS NULL;
"""

APPEND_ONLY = """
CREATE FUNCTION arus_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is refused: the journal is append-only, post a reversal instead',
        TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'P0001', HINT = 'append_only';
END $$;

CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION arus_reject_change();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_change();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION arus_reject_change();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_change();

-- At commit, every new entry must have 2..100 postings balancing per currency: a second,
-- independent check behind arus_write_entry (django-hordak's deferred constraint trigger).
CREATE FUNCTION arus_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_count bigint;
    v_unbalanced text;
BEGIN
    SELECT count(*) INTO v_count FROM postings WHERE entry_id = NEW.id;
    IF v_count < 2 OR v_count > 100 THEN
        RAISE EXCEPTION 'entry % has % postings; 2 to 100 are required', NEW.id, v_count
            USING ERRCODE = 'P0001', HINT = 'unbalanced_entry';
    END IF;
    SELECT string_agg(currency, ', ') INTO v_unbalanced FROM (
        SELECT currency FROM postings WHERE entry_id = NEW.id GROUP BY currency
        HAVING sum(CASE direction WHEN 'debit' THEN amount::numeric ELSE -amount::numeric END) <> 0
    ) unbalanced;
    IF v_unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'entry % does not balance in %', NEW.id, v_unbalanced
            USING ERRCODE = 'P0001', HINT = 'unbalanced_entry';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER entries_balanced AFTER INSERT ON entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION arus_check_entry_balanced();
"""

RENDERING = """
CREATE FUNCTION arus_timestamp(p_at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The database renders the canonical JSON of accounts and entries, so the stored idempotent
-- response, the outbox event and the read API can never disagree on an object's shape.
CREATE FUNCTION arus_account_json(p_account_id uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', a.id, 'code', a.code, 'name', a.name, 'type', a.type,
        'currency', a.currency, 'allow_negative', a.allow_negative, 'metadata', a.metadata,
        'balance', b.balance, 'created_at', arus_timestamp(a.created_at))
    FROM accounts a JOIN balances b ON b.account_id = a.id
    WHERE a.id = p_account_id
$$;

CREATE FUNCTION arus_entry_json(p_entry_id uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', e.id, 'ledger_seq', e.ledger_seq, 'description', e.description,
        'effective_date', to_char(e.effective_date, 'YYYY-MM-DD'), 'metadata', e.metadata,
        'postings', (
            SELECT jsonb_agg(jsonb_build_object(
                       'account_id', p.account_id, 'account_code', a.code,
                       'direction', p.direction, 'amount', p.amount, 'currency', p.currency)
                   ORDER BY p.position)
            FROM postings p JOIN accounts a ON a.id = p.account_id
            WHERE p.entry_id = e.id),
        'reverses', e.reverses,
        'reversed_by', (SELECT r.id FROM entries r WHERE r.reverses = e.id),
        'created_at', arus_timestamp(e.created_at))
    FROM entries e
    WHERE e.id = p_entry_id
$$;

CREATE FUNCTION arus_enqueue_event(
    p_ledger uuid, p_event_type text, p_ledger_seq bigint, p_occurred_at timestamptz,
    p_data jsonb
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_event_id uuid := gen_random_uuid();
BEGIN
    INSERT INTO outbox_events (event_id, ledger_id, event_type, ledger_seq, occurred_at, envelope)
    VALUES (v_event_id, p_ledger, p_event_type, p_ledger_seq, p_occurred_at,
            jsonb_build_object(
                'event_id', v_event_id, 'event_type', p_event_type, 'ledger_id', p_ledger,
                'ledger_seq', p_ledger_seq, 'occurred_at', arus_timestamp(p_occurred_at),
                'data', p_data));
END $$;
"""

# Every mutation is one call to one of these functions, so it reaches PostgreSQL in a single
# round trip and holds its row locks for no longer than the server needs (SPEC §7). Errors
# are raised with the API error code in HINT; arus.errors maps them to domain exceptions.
POSTING = """
-- Claims (ledger, key) first. A concurrent request with the same key blocks on the unique
-- index until the first commits, then sees its stored response (READ COMMITTED takes a new
-- snapshot per statement). Returns NULL when the key is fresh, else the replay.
CREATE FUNCTION arus_claim_idempotency_key(p_ledger uuid, p_key text, p_fingerprint text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_claim record;
BEGIN
    INSERT INTO idempotency_keys (ledger_id, key, fingerprint)
    VALUES (p_ledger, p_key, p_fingerprint)
    ON CONFLICT (ledger_id, key) DO NOTHING;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    SELECT fingerprint, status_code, response INTO STRICT v_claim
    FROM idempotency_keys WHERE ledger_id = p_ledger AND key = p_key;
    IF v_claim.fingerprint <> p_fingerprint THEN
        RAISE EXCEPTION 'this Idempotency-Key was already used with a different request'
            USING ERRCODE = 'P0001', HINT = 'idempotency_conflict';
    END IF;
    ASSERT v_claim.response IS NOT NULL, 'a committed idempotency claim has its response';
    RETURN jsonb_build_object(
        'replayed', true, 'status', v_claim.status_code, 'body', v_claim.response);
END $$;

CREATE FUNCTION arus_store_response(p_ledger uuid, p_key text, p_status int, p_body jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF p_key IS NOT NULL THEN
        UPDATE idempotency_keys SET status_code = p_status, response = p_body
        WHERE ledger_id = p_ledger AND key = p_key;
    END IF;
    RETURN jsonb_build_object('replayed', false, 'status', p_status, 'body', p_body);
END $$;

-- Writes one balanced entry. p_lines: [{account_id | account_code, direction, amount,
-- currency?}], already shape-checked by arus.domain. Order of work: resolve accounts, check
-- balance per currency, lock balance rows in ascending account id, compute new balances,
-- refuse overdrafts and int64 overflow, then take the ledger row (gap-free ledger_seq) last so
-- it is held for the shortest time, and write entry, postings, balances and the outbox event.
CREATE FUNCTION arus_write_entry(
    p_ledger uuid, p_key text, p_description text, p_effective_date date, p_metadata jsonb,
    p_lines jsonb, p_reverses uuid
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    c_int64_max constant numeric := 9223372036854775807;
    c_int64_min constant numeric := -9223372036854775808;
    v_count int := jsonb_array_length(p_lines);
    v_line jsonb;
    v_account record;
    v_ids uuid[] := '{}';
    v_directions text[] := '{}';
    v_amounts bigint[] := '{}';
    v_currencies text[] := '{}';
    v_deltas numeric[] := '{}';
    v_after numeric[] := '{}';
    v_locked_ids uuid[] := '{}';
    v_locked_balances numeric[] := '{}';
    v_locked_codes text[] := '{}';
    v_locked_negative boolean[] := '{}';
    v_balance record;
    v_slot int;
    v_problem text;
    v_entry_id uuid := gen_random_uuid();
    v_seq bigint;
    v_now timestamptz;
    v_body jsonb;
BEGIN
    ASSERT v_count BETWEEN 2 AND 100, 'an entry has 2..100 postings';
    FOR i IN 0 .. v_count - 1 LOOP
        v_line := p_lines -> i;
        IF v_line ? 'account_id' THEN
            SELECT a.id, a.code, a.currency, a.type INTO v_account
            FROM accounts a
            WHERE a.ledger_id = p_ledger AND a.id = (v_line ->> 'account_id')::uuid;
        ELSE
            SELECT a.id, a.code, a.currency, a.type INTO v_account
            FROM accounts a
            WHERE a.ledger_id = p_ledger AND a.code = v_line ->> 'account_code';
        END IF;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'postings[%].account: no such account %', i,
                coalesce(v_line ->> 'account_id', v_line ->> 'account_code')
                USING ERRCODE = 'P0001', HINT = 'validation_error';
        END IF;
        IF v_line ? 'currency' AND v_line ->> 'currency' <> v_account.currency THEN
            RAISE EXCEPTION 'postings[%].currency is % but account % is in %', i,
                v_line ->> 'currency', v_account.code, v_account.currency
                USING ERRCODE = 'P0001', HINT = 'currency_mismatch';
        END IF;
        v_ids := v_ids || v_account.id;
        v_directions := v_directions || (v_line ->> 'direction');
        v_amounts := v_amounts || (v_line ->> 'amount')::bigint;
        v_currencies := v_currencies || v_account.currency;
        v_deltas := v_deltas || CASE
            WHEN (v_line ->> 'direction') =
                 CASE WHEN v_account.type IN ('asset', 'expense') THEN 'debit' ELSE 'credit' END
            THEN (v_line ->> 'amount')::numeric
            ELSE -(v_line ->> 'amount')::numeric END;
    END LOOP;

    SELECT string_agg(format('%s (debits %s, credits %s)', currency, debits, credits), '; ')
    INTO v_problem
    FROM (
        SELECT currency,
               coalesce(sum(amount) FILTER (WHERE direction = 'debit'), 0) AS debits,
               coalesce(sum(amount) FILTER (WHERE direction = 'credit'), 0) AS credits
        FROM unnest(v_currencies, v_directions, v_amounts) AS l (currency, direction, amount)
        GROUP BY currency
    ) totals
    WHERE debits <> credits;
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'debits and credits differ: %', v_problem
            USING ERRCODE = 'P0001', HINT = 'unbalanced_entry';
    END IF;
    SELECT string_agg(currency, ', ') INTO v_problem FROM (
        SELECT currency FROM unnest(v_currencies, v_amounts) AS l (currency, amount)
        GROUP BY currency HAVING sum(amount) > c_int64_max * 2
    ) too_large;
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'the entry''s total in % exceeds the int64 range', v_problem
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;

    -- Lock order is ascending account id for every writer: no deadlocks between entries.
    FOR v_balance IN
        SELECT b.account_id, b.balance, b.allow_negative, a.code
        FROM balances b JOIN accounts a ON a.id = b.account_id
        WHERE b.account_id = ANY (v_ids)
        ORDER BY b.account_id
        FOR UPDATE OF b
    LOOP
        v_locked_ids := v_locked_ids || v_balance.account_id;
        v_locked_balances := v_locked_balances || v_balance.balance::numeric;
        v_locked_codes := v_locked_codes || v_balance.code;
        v_locked_negative := v_locked_negative || v_balance.allow_negative;
    END LOOP;

    FOR i IN 1 .. v_count LOOP
        v_slot := array_position(v_locked_ids, v_ids[i]);
        v_locked_balances[v_slot] := v_locked_balances[v_slot] + v_deltas[i];
        IF v_locked_balances[v_slot] NOT BETWEEN c_int64_min AND c_int64_max THEN
            RAISE EXCEPTION 'the balance of account % would leave the int64 range',
                v_locked_codes[v_slot]
                USING ERRCODE = 'P0001', HINT = 'validation_error';
        END IF;
        v_after := v_after || v_locked_balances[v_slot];
    END LOOP;
    FOR v_slot IN 1 .. coalesce(array_length(v_locked_ids, 1), 0) LOOP
        IF NOT v_locked_negative[v_slot] AND v_locked_balances[v_slot] < 0 THEN
            RAISE EXCEPTION 'account % has insufficient funds: the entry would take it to %',
                v_locked_codes[v_slot], v_locked_balances[v_slot]
                USING ERRCODE = 'P0001', HINT = 'insufficient_funds';
        END IF;
    END LOOP;

    UPDATE ledgers SET last_ledger_seq = last_ledger_seq + 1
    WHERE id = p_ledger RETURNING last_ledger_seq INTO STRICT v_seq;
    v_now := clock_timestamp();

    INSERT INTO entries (id, ledger_id, ledger_seq, description, effective_date, metadata,
                         reverses, idempotency_key, created_at)
    VALUES (v_entry_id, p_ledger, v_seq, p_description, p_effective_date,
            coalesce(p_metadata, '{}'::jsonb), p_reverses, p_key, v_now);

    INSERT INTO postings (entry_id, ledger_id, account_id, position, direction, amount,
                          currency, balance_after)
    SELECT v_entry_id, p_ledger, l.account_id, l.position, l.direction, l.amount, l.currency,
           l.balance_after::bigint
    FROM unnest(v_ids, v_directions, v_amounts, v_currencies, v_after)
         WITH ORDINALITY AS l (account_id, direction, amount, currency, balance_after, position);

    UPDATE balances b
    SET balance = n.balance::bigint,
        posting_count = b.posting_count
                        + (SELECT count(*) FROM unnest(v_ids) AS x WHERE x = b.account_id),
        updated_at = v_now
    FROM unnest(v_locked_ids, v_locked_balances) AS n (account_id, balance)
    WHERE b.account_id = n.account_id;

    v_body := arus_entry_json(v_entry_id);
    PERFORM arus_enqueue_event(p_ledger, 'entry.committed', v_seq, v_now, v_body);
    RETURN v_body;
END $$;

CREATE FUNCTION arus_post_entry(
    p_ledger uuid, p_key text, p_fingerprint text, p_description text, p_effective_date date,
    p_metadata jsonb, p_lines jsonb
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_replay jsonb;
BEGIN
    v_replay := arus_claim_idempotency_key(p_ledger, p_key, p_fingerprint);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    RETURN arus_store_response(p_ledger, p_key, 201, arus_write_entry(
        p_ledger, p_key, p_description, p_effective_date, p_metadata, p_lines, NULL));
END $$;

CREATE FUNCTION arus_reverse_entry(
    p_ledger uuid, p_key text, p_fingerprint text, p_entry_id uuid, p_description text,
    p_effective_date date
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_replay jsonb;
    v_original record;
    v_lines jsonb;
BEGIN
    v_replay := arus_claim_idempotency_key(p_ledger, p_key, p_fingerprint);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    SELECT id, ledger_seq INTO v_original
    FROM entries WHERE ledger_id = p_ledger AND id = p_entry_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no entry %', p_entry_id USING ERRCODE = 'P0001', HINT = 'not_found';
    END IF;
    -- Reversals of one entry queue here, before any balance lock, so the loser of a race sees
    -- the winner's reversal (already_reversed) instead of the balances it moved. Always taken
    -- first and only by reversals: it cannot join a lock cycle.
    PERFORM pg_advisory_xact_lock(hashtextextended('arus-reverse:' || p_entry_id::text, 0));
    IF EXISTS (SELECT 1 FROM entries WHERE reverses = p_entry_id) THEN
        RAISE EXCEPTION 'entry % is already reversed', p_entry_id
            USING ERRCODE = 'P0001', HINT = 'already_reversed';
    END IF;
    SELECT jsonb_agg(jsonb_build_object(
               'account_id', account_id,
               'direction', CASE direction WHEN 'debit' THEN 'credit' ELSE 'debit' END,
               'amount', amount) ORDER BY position)
    INTO v_lines
    FROM postings WHERE entry_id = p_entry_id;
    -- entries_reverses_key still backs this up: a second reversal can never be written.
    RETURN arus_store_response(p_ledger, p_key, 201, arus_write_entry(
        p_ledger, p_key,
        coalesce(p_description, format('Reversal of entry %s', v_original.ledger_seq)),
        p_effective_date, '{}'::jsonb, v_lines, p_entry_id));
END $$;

CREATE FUNCTION arus_create_account(
    p_ledger uuid, p_key text, p_fingerprint text, p_code text, p_name text, p_type text,
    p_currency text, p_allow_negative boolean, p_metadata jsonb
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_replay jsonb;
    v_id uuid;
    v_body jsonb;
BEGIN
    IF p_key IS NOT NULL THEN
        v_replay := arus_claim_idempotency_key(p_ledger, p_key, p_fingerprint);
        IF v_replay IS NOT NULL THEN
            RETURN v_replay;
        END IF;
    END IF;
    INSERT INTO accounts (ledger_id, code, name, type, currency, allow_negative, metadata)
    VALUES (p_ledger, p_code, p_name, p_type, p_currency, p_allow_negative,
            coalesce(p_metadata, '{}'::jsonb))
    ON CONFLICT (ledger_id, code) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'an account with code % already exists', p_code
            USING ERRCODE = 'P0001', HINT = 'duplicate_account_code';
    END IF;
    INSERT INTO balances (account_id, ledger_id, currency, normal_side, allow_negative)
    VALUES (v_id, p_ledger, p_currency,
            CASE WHEN p_type IN ('asset', 'expense') THEN 'debit' ELSE 'credit' END,
            p_allow_negative);
    v_body := arus_account_json(v_id);
    PERFORM arus_enqueue_event(p_ledger, 'account.created', NULL, clock_timestamp(), v_body);
    RETURN arus_store_response(p_ledger, p_key, 201, v_body);
END $$;
"""


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(APPEND_ONLY)
    op.execute(RENDERING)
    op.execute(POSTING)


def downgrade() -> None:
    raise NotImplementedError("the ledger core is never dropped by a migration")
