-- The posting engine. Every mutation is one call to one of the public functions at the end of
-- this file, so it reaches PostgreSQL in one round trip, authorised inside the call. The public
-- functions are SECURITY DEFINER with a pinned search_path: the application's role (arus_app,
-- migration 0005) may execute them but owns nothing and cannot write a table itself. Errors are
-- raised with the API error code in HINT (and, for a batch item, its index in DETAIL); the
-- Python gateway maps them to domain exceptions.
--
-- Lock order, the same for every writer, so writers never deadlock:
--   1. idempotency keys, claimed in ascending key order (a concurrent request with the same key
--      waits on the unique index, then replays the stored response);
--   2. balance rows, locked in ascending account id, all of a call's accounts in one statement;
--   3. the ledger row (the gap-free ledger_seq), taken once per call, as late as possible:
--      after it come only the entry, postings, outbox and stored-response writes.

-- The ledger's close lock: a daily close holds it exclusively while it computes and stores its
-- snapshot, a back-dated call holds it shared while it is judged and written, so no entry is
-- judged against a close that has not committed yet. It is the ledger's row in
-- ledger_close_locks, which only the owner may lock (no runtime role holds UPDATE on it): an
-- advisory lock's key is one any login can compute, see in pg_locks and take first.
CREATE OR REPLACE FUNCTION arus_close_lock(p_ledger uuid, p_exclusive boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_exclusive THEN
        PERFORM 1 FROM ledger_close_locks WHERE ledger_id = p_ledger FOR UPDATE;
    ELSE
        PERFORM 1 FROM ledger_close_locks WHERE ledger_id = p_ledger FOR SHARE;
    END IF;
END $$;

-- Every ledger has its close-lock row from its creation (trigger ledgers_close_lock).
CREATE OR REPLACE FUNCTION arus_add_close_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_close_locks (ledger_id) VALUES (NEW.id);
    RETURN NULL;
END $$;

-- Claims (ledger, key) for one request. Returns NULL when the key is fresh, else the replay
-- `{"status": 200, "entry"|"body": ..., "replayed": true}` of the stored response.
CREATE OR REPLACE FUNCTION arus_claim_idempotency_key(p_ledger uuid, p_key text, p_fingerprint text)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    v_claim record;
BEGIN
    INSERT INTO idempotency_keys (ledger_id, key, fingerprint)
    VALUES (p_ledger, p_key, p_fingerprint)
    ON CONFLICT (ledger_id, key) DO NOTHING;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    -- A new statement, so a new READ COMMITTED snapshot: it sees the claim we waited for.
    SELECT fingerprint, response INTO STRICT v_claim
    FROM idempotency_keys WHERE ledger_id = p_ledger AND key = p_key;
    IF v_claim.fingerprint <> p_fingerprint THEN
        RAISE EXCEPTION 'this Idempotency-Key was already used with a different request'
            USING ERRCODE = 'P0001', HINT = 'idempotency_conflict';
    END IF;
    ASSERT v_claim.response IS NOT NULL, 'a committed idempotency claim has its response';
    RETURN json_build_object('status', 200, 'body', v_claim.response, 'replayed', true);
END $$;

-- One outbox row: the SPEC §4 envelope, exactly as it will be published.
CREATE OR REPLACE FUNCTION arus_enqueue_event(
    p_ledger uuid, p_event_type text, p_ledger_seq bigint, p_occurred_at timestamptz,
    p_data json
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_event_id uuid := gen_random_uuid();
BEGIN
    INSERT INTO outbox_events (event_id, ledger_id, event_type, ledger_seq, occurred_at, envelope)
    VALUES (v_event_id, p_ledger, p_event_type, p_ledger_seq, p_occurred_at,
            json_build_object(
                'event_id', v_event_id, 'event_type', p_event_type, 'ledger_id', p_ledger,
                'ledger_seq', p_ledger_seq, 'occurred_at', arus_timestamp(p_occurred_at),
                'data', p_data));
END $$;

-- A batch's idempotency claims, in ascending key order: its new items, decoded (a batch never
-- posts nor reverses an entry), and by item what is known already: the stored response of a
-- key used before with the same request, a conflict, or the error the commands found.
CREATE OR REPLACE FUNCTION arus_claim_batch(
    p_ledger uuid, p_items jsonb, OUT items arus_item[], OUT results json[]
) LANGUAGE plpgsql AS $$
DECLARE
    v_replay record;
BEGIN
    WITH claimed AS (
        INSERT INTO idempotency_keys (ledger_id, key, fingerprint)
        SELECT p_ledger, i.value ->> 'key', i.value ->> 'fingerprint'
        FROM jsonb_array_elements(p_items) AS i (value)
        WHERE NOT i.value ? 'error'
        ORDER BY i.value ->> 'key'
        ON CONFLICT (ledger_id, key) DO NOTHING
        RETURNING key
    )
    SELECT coalesce(array_agg(ROW(
               i.ord, i.value ->> 'key', i.value ->> 'fingerprint', i.value ->> 'description',
               (i.value ->> 'effective_date')::date, coalesce(i.value -> 'metadata', '{}'),
               NULL, NULL, coalesce((i.value ->> 'pending')::boolean, false),
               (i.value ->> 'expires_at')::timestamptz, i.value -> 'lines')::arus_item
               ORDER BY i.ord) FILTER (WHERE c.key IS NOT NULL), '{}'),
           array_agg(CASE WHEN i.value ? 'error' THEN json_build_object(
               'status', (i.value -> 'error' ->> 'status')::int, 'error', json_build_object(
                   'code', i.value -> 'error' ->> 'code',
                   'message', i.value -> 'error' ->> 'message')) END ORDER BY i.ord)
    INTO items, results
    FROM jsonb_array_elements(p_items) WITH ORDINALITY AS i (value, ord)
    LEFT JOIN claimed c ON c.key = i.value ->> 'key';
    -- The keys not claimed here were committed by others: a new statement sees them.
    FOR v_replay IN
        SELECT i.ord::int AS item, k.fingerprint = i.value ->> 'fingerprint' AS same, k.response
        FROM jsonb_array_elements(p_items) WITH ORDINALITY AS i (value, ord)
        JOIN idempotency_keys k ON k.ledger_id = p_ledger AND k.key = i.value ->> 'key'
        WHERE NOT i.value ? 'error' AND i.ord <> ALL (ARRAY(SELECT (x).item FROM unnest(items) x))
    LOOP
        results[v_replay.item] := CASE WHEN v_replay.same THEN json_build_object(
                'status', 200, 'entry', v_replay.response, 'replayed', true)
            ELSE json_build_object('status', 409, 'error', json_build_object(
                'code', 'idempotency_conflict',
                'message', 'this Idempotency-Key was already used with a different request'))
            END;
    END LOOP;
END $$;

-- The engine's core: writes the new items p_items of one call (their keys claimed), each
-- judged (arus_judge) on the balances the items written before it left, in four steps:
--   1. lock: resolve every line to its account and lock the balance rows, ascending id;
--   2. judge and apply, in passes: the items of a pass are judged at once; those before the
--      first refusal move their balances (and release the holds they post) in the same
--      statement; the refused item is answered, and judging goes on after it;
--   3. give back the claims of refused items;
--   4. record: the ledger's sequence step, then the entries, postings, outbox envelopes and
--      stored responses, each entry's JSON built once;
--   5. the pending lines and holds of pending entries, if the call has any.
-- results holds, by request item, what is known already (replays, conflicts, items the
-- commands refused: those are not in p_items) and gains the rest; body is the first written
-- entry's JSON, which is what a single-entry call answers. Atomic: the first failing item in
-- request order raises, and nothing is written. Callers check each item's lines with
-- arus_lines_ok first.
CREATE OR REPLACE FUNCTION arus_write_entries(
    p_ledger uuid, p_items arus_item[], p_atomic boolean, INOUT results json[], OUT body json
) LANGUAGE plpgsql
-- Plan each statement once per connection: re-planning them on every call (PostgreSQL's
-- default for statements with parameters, while custom plans look cheaper) cost half the
-- call. Every statement's plan is driven by index lookups whatever the parameters' values.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_at constant timestamptz := clock_timestamp();
    v_known_error int;  -- atomic: the first item already known to fail
    v_last int := cardinality(results);  -- the last item judged
    v_last_close date;
    v_lines arus_line[];
    v_from int := 1;
    v_to int;
    v_span int := cardinality(results);  -- items judged at once: 1 after a refusal, then doubling
    v_refusal arus_refusal;
    v_refused int[] := '{}';
    v_pending_entries jsonb;  -- the pending entries written: item -> entry id
    v_earliest date;  -- the earliest effective_date of the call
    v_close_locked boolean := false;
    v_sequenced_at timestamptz;
BEGIN
    IF p_atomic AND cardinality(p_items) < cardinality(results) THEN
        SELECT min(r.item) INTO v_known_error
        FROM unnest(results) WITH ORDINALITY AS r (result, item)
        WHERE r.result -> 'error' IS NOT NULL;
        v_last := coalesce(v_known_error - 1, v_last);
    END IF;

    -- Closed days (SPEC §3.3): an entry dated on or before the ledger's last close is refused.
    -- Only a day that is over can be closed, so entries dated today or later skip the lookup;
    -- a back-dated call takes the ledger's close lock shared, and a close takes it exclusive:
    -- a close never runs between this judgement and this call's commit.
    v_earliest := (SELECT min(i.effective_date) FROM unnest(p_items) AS i);
    IF v_earliest < (v_at AT TIME ZONE 'UTC')::date THEN
        v_close_locked := true;
        PERFORM arus_close_lock(p_ledger, false);
        SELECT max(close_date) INTO v_last_close FROM daily_closes WHERE ledger_id = p_ledger;
    END IF;

    -- 1. Lock. A line naming no account of this ledger resolves to account_id NULL. One index
    --    lookup per line (LIMIT 1 keeps the plan a nested loop whatever the estimates) and one
    --    per balance row (= ANY of an array, never a hash join over the ledger's balances).
    WITH resolved AS (
        SELECT ROW(i.item, p.ord, a.id, coalesce(p.value ->> 'account_id',
                                                 p.value ->> 'account_code'),
                   a.code, a.currency, p.value ->> 'currency', p.value ->> 'direction',
                   (p.value ->> 'amount')::bigint, i.pending, i.posts IS NOT NULL,
                   (p.value ->> 'expected_version')::bigint)::arus_line
                   AS line
        FROM unnest(p_items) AS i
        CROSS JOIN LATERAL jsonb_array_elements(i.lines) WITH ORDINALITY AS p (value, ord)
        LEFT JOIN LATERAL (
            SELECT a.id, a.code, a.currency FROM accounts a
            WHERE a.ledger_id = p_ledger
              AND a.id = coalesce((p.value ->> 'account_id')::uuid, (
                  SELECT c.id FROM accounts c
                  WHERE c.ledger_id = p_ledger AND c.code = p.value ->> 'account_code'))
            LIMIT 1
        ) a ON true
    ), locked AS (
        SELECT b.account_id FROM balances b
        WHERE b.account_id = ANY (ARRAY(SELECT (r.line).account_id FROM resolved r))
        ORDER BY b.account_id
        FOR UPDATE
    )
    SELECT array_agg(r.line ORDER BY (r.line).item, (r.line).pos)
    INTO v_lines
    FROM resolved r
    WHERE (SELECT count(*) FROM locked) >= 0;

    -- 2. Judge and apply. A new statement, after the locks: it sees every sweep committed
    --    before them, and no other can change these rows until this call commits.
    WHILE v_from <= v_last LOOP
        v_to := least(v_from + v_span - 1, v_last);
        WITH refusal AS MATERIALIZED (
            SELECT * FROM arus_judge(p_items, v_lines, v_from, v_to, v_last_close, v_at) AS r
            ORDER BY r.item LIMIT 1
        ), passed AS (
            SELECT v_from AS first, least(v_to, (SELECT r.item - 1 FROM refusal r)) AS last
        ), moved AS (
            UPDATE balances b
            SET balance = b.balance + m.delta, posting_count = b.posting_count + m.postings,
                pending_debits = b.pending_debits + m.pending_debits,
                pending_credits = b.pending_credits + m.pending_credits, updated_at = v_at
            FROM (
                SELECT m.account_id, sum(m.delta) AS delta,
                       count(*) FILTER (WHERE NOT m.pending) AS postings,
                       coalesce(sum(m.hold_delta) FILTER (WHERE m.direction = 'debit'), 0)
                           AS pending_debits,
                       coalesce(sum(m.hold_delta) FILTER (WHERE m.direction = 'credit'), 0)
                           AS pending_credits
                FROM arus_line_moves(v_lines) AS m, passed p
                WHERE m.item BETWEEN p.first AND p.last
                GROUP BY m.account_id
            ) m
            WHERE b.account_id = m.account_id
        ), released AS (
            DELETE FROM holds h USING unnest(p_items) AS i, passed p
            WHERE h.entry_id = i.posts AND i.item BETWEEN p.first AND p.last
        )
        SELECT r.item, r.code, r.message, r.first_open_date INTO v_refusal FROM refusal r;

        IF v_refusal.item IS NULL THEN
            v_from := v_to + 1;
            v_span := v_span * 2;
            CONTINUE;
        END IF;
        IF p_atomic THEN
            RAISE EXCEPTION '%', v_refusal.message
                USING ERRCODE = 'P0001', HINT = v_refusal.code,
                      DETAIL = format('index=%s', v_refusal.item - 1) || coalesce(
                          ' first_open_date=' || to_char(v_refusal.first_open_date, 'YYYY-MM-DD'),
                          '');
        END IF;
        results[v_refusal.item] := json_build_object(
            'status', CASE v_refusal.code WHEN 'version_conflict' THEN 409 ELSE 422 END, 'error',
            CASE WHEN v_refusal.first_open_date IS NULL
                 THEN json_build_object('code', v_refusal.code, 'message', v_refusal.message)
                 ELSE json_build_object('code', v_refusal.code, 'message', v_refusal.message,
                     'first_open_date', to_char(v_refusal.first_open_date, 'YYYY-MM-DD')) END);
        v_refused := v_refused || v_refusal.item;
        v_from := v_refusal.item + 1;
        v_span := 1;
    END LOOP;
    IF v_known_error IS NOT NULL THEN
        RAISE EXCEPTION '%', results[v_known_error] -> 'error' ->> 'message'
            USING ERRCODE = 'P0001', HINT = results[v_known_error] -> 'error' ->> 'code',
                  DETAIL = format('index=%s', v_known_error - 1);
    END IF;

    -- 3. A refused item leaves nothing, not even its claim.
    IF cardinality(v_refused) > 0 THEN
        DELETE FROM idempotency_keys k USING unnest(p_items) AS i
        WHERE k.ledger_id = p_ledger AND k.key = i.key AND i.item = ANY (v_refused);
    END IF;
    IF cardinality(v_refused) = cardinality(p_items) THEN
        RETURN;
    END IF;

    -- 4. Record. The sequence step first: the ledger row (the gap-free ledger_seq) is held from
    --    here to commit, and nothing follows it but this statement's writes (and a pending
    --    entry's, step 5). Each line's balance_after (and account_version) is its account's
    --    balance (and version) now, less what the call's later lines moved.
    WITH sequenced AS (
        UPDATE ledgers SET last_ledger_seq = last_ledger_seq + cardinality(p_items)
                                                             - cardinality(v_refused)
        WHERE id = p_ledger
        RETURNING last_ledger_seq - cardinality(p_items) + cardinality(v_refused) AS before,
                  clock_timestamp() AS at
    ), entry AS (
        SELECT i.*, gen_random_uuid() AS id, s.at,
               s.before + row_number() OVER (ORDER BY i.item) AS ledger_seq
        FROM unnest(p_items) AS i, sequenced s
        WHERE i.item <> ALL (v_refused)
    ), line AS (
        SELECT e.id AS entry_id, e.expires_at, e.at, m.*,
               m.balance - coalesce(sum(m.delta) OVER later, 0) AS balance_after,
               CASE WHEN NOT m.pending
                    THEN m.version - coalesce(sum(m.posted) OVER later, 0) END AS account_version
        FROM arus_line_moves(v_lines) AS m JOIN entry e ON e.item = m.item
        WINDOW later AS (PARTITION BY m.account_id ORDER BY m.item, m.pos
                         ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
    ), journal AS (
        INSERT INTO entries (id, ledger_id, ledger_seq, description, effective_date, metadata,
                             reverses, posts, pending, expires_at, idempotency_key, created_at)
        SELECT e.id, p_ledger, e.ledger_seq, e.description, e.effective_date, e.metadata,
               e.reverses, e.posts, e.pending, e.expires_at, e.key, e.at
        FROM entry e
    ), posted AS (
        INSERT INTO postings (entry_id, ledger_id, account_id, position, direction, amount,
                              currency, balance_after, account_version, created_at)
        SELECT l.entry_id, p_ledger, l.account_id, l.pos, l.direction, l.amount, l.currency,
               l.balance_after, l.account_version, l.at
        FROM line l WHERE NOT l.pending
    ), rendered AS (
        SELECT e.item, e.id, e.key, e.ledger_seq, e.at, e.pending,
               CASE WHEN e.pending THEN 'entry.pending' ELSE 'entry.committed' END AS event_type,
               json_build_object(
                   'id', e.id, 'ledger_seq', e.ledger_seq,
                   'status', CASE WHEN e.pending THEN 'pending' ELSE 'posted' END,
                   'description', e.description,
                   'effective_date', to_char(e.effective_date, 'YYYY-MM-DD'),
                   'metadata', e.metadata,
                   'postings', (SELECT json_agg(json_build_object(
                                    'account_id', l.account_id, 'account_code', l.code,
                                    'direction', l.direction, 'amount', l.amount,
                                    'currency', l.currency,
                                    'account_version', l.account_version) ORDER BY l.pos)
                                FROM line l WHERE l.entry_id = e.id),
                   'reverses', e.reverses, 'reversed_by', NULL,
                   'posts', e.posts, 'posted_by', NULL,
                   'expires_at', arus_timestamp(e.expires_at),
                   'created_at', arus_timestamp(e.at)) AS body
        FROM entry e
    ), published AS (
        INSERT INTO outbox_events (event_id, ledger_id, event_type, ledger_seq, occurred_at,
                                   envelope)
        SELECT x.event_id, p_ledger, r.event_type, r.ledger_seq, r.at,
               json_build_object(
                   'event_id', x.event_id, 'event_type', r.event_type, 'ledger_id', p_ledger,
                   'ledger_seq', r.ledger_seq, 'occurred_at', arus_timestamp(r.at),
                   'data', r.body)
        FROM rendered r CROSS JOIN LATERAL (SELECT gen_random_uuid() AS event_id, r.item) x
        ORDER BY r.ledger_seq
    ), stored AS (
        UPDATE idempotency_keys k SET status_code = 201, response = r.body
        FROM rendered r WHERE k.ledger_id = p_ledger AND k.key = r.key
    )
    SELECT array_agg(coalesce(r.result, k.result) ORDER BY k.item),
           (array_agg(r.body ORDER BY r.item) FILTER (WHERE r.body IS NOT NULL))[1],
           jsonb_object_agg(r.item, r.id) FILTER (WHERE r.pending),
           (SELECT s.at FROM sequenced s)
    INTO results, body, v_pending_entries, v_sequenced_at
    FROM unnest(results) WITH ORDINALITY AS k (result, item)
    LEFT JOIN (SELECT w.*, json_build_object('status', 201, 'entry', w.body) AS result
               FROM rendered w) r ON r.item = k.item;
    -- A call that started on the day it is dated skipped the close lock; if the day ended before
    -- it took the ledger row, that day's close may have run meanwhile (arus_close_day waits
    -- only for the row's holder): refused, to be retried, which takes the close lock.
    IF NOT v_close_locked AND v_earliest < (v_sequenced_at AT TIME ZONE 'UTC')::date THEN
        RAISE EXCEPTION 'the day this entry is dated ended while it was written: retry'
            USING ERRCODE = '40001';
    END IF;

    -- 5. A pending entry's lines reserve instead of posting: its pending lines and holds, in a
    --    statement of their own, which a call without pending entries never runs.
    IF v_pending_entries IS NOT NULL THEN
        WITH line AS (
            SELECT w.id::uuid AS entry_id, i.expires_at, l.*
            FROM jsonb_each_text(v_pending_entries) AS w (item, id)
            JOIN unnest(p_items) AS i ON i.item = w.item::int
            JOIN unnest(v_lines) AS l ON l.item = i.item
        ), reserved AS (
            INSERT INTO pending_postings (entry_id, ledger_id, account_id, position, direction,
                                          amount, currency)
            SELECT l.entry_id, p_ledger, l.account_id, l.pos, l.direction, l.amount, l.currency
            FROM line l
        )
        INSERT INTO holds (entry_id, position, ledger_id, account_id, direction, amount,
                           expires_at)
        SELECT l.entry_id, l.pos, p_ledger, l.account_id, l.direction, l.amount, l.expires_at
        FROM line l;
    END IF;
END $$;

-- POST /v1/entries: one entry. Returns {"status", "body", "replayed"}.
CREATE OR REPLACE FUNCTION arus_post_entry(
    p_key_id text, p_secret_hash bytea, p_idempotency_key text, p_fingerprint text,
    p_description text, p_effective_date date, p_metadata jsonb, p_lines jsonb,
    p_pending boolean, p_expires_at timestamptz
) RETURNS json LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_ledger uuid;
    v_replay json;
    v_written record;
BEGIN
    PERFORM arus_require_read_committed();
    -- The API key is authorised and the idempotency key claimed in one statement. When it
    -- claims nothing, arus_authorize says why the API key is refused, or the claim replays.
    INSERT INTO idempotency_keys (ledger_id, key, fingerprint)
    SELECT k.ledger_id, p_idempotency_key, p_fingerprint
    FROM api_keys k
    WHERE k.id = p_key_id AND k.revoked_at IS NULL AND k.scope = 'write'
      AND k.secret_hash = p_secret_hash
    ON CONFLICT (ledger_id, key) DO NOTHING
    RETURNING ledger_id INTO v_ledger;
    IF v_ledger IS NULL THEN
        v_ledger := arus_authorize(p_key_id, p_secret_hash, 'write');
        v_replay := arus_claim_idempotency_key(v_ledger, p_idempotency_key, p_fingerprint);
        IF v_replay IS NOT NULL THEN
            RETURN v_replay;
        END IF;
    END IF;
    IF NOT arus_lines_ok(p_lines) THEN
        RAISE EXCEPTION 'an entry has 2..100 postings'
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    v_written := arus_write_entries(v_ledger, ARRAY[ROW(
            1, p_idempotency_key, p_fingerprint, p_description, p_effective_date,
            coalesce(p_metadata, '{}'), NULL, NULL, coalesce(p_pending, false), p_expires_at,
            p_lines)::arus_item], true, ARRAY[NULL::json]);
    RETURN json_build_object('status', 201, 'body', v_written.body, 'replayed', false);
END $$;

-- POST /v1/entries/batch: items as the gateway sends them (ledger/gateway.py post_batch).
-- Returns {"results": [...]}, one result per item in request order.
CREATE OR REPLACE FUNCTION arus_post_batch(
    p_key_id text, p_secret_hash bytea, p_items jsonb, p_atomic boolean
) RETURNS json LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_ledger constant uuid := arus_authorize(p_key_id, p_secret_hash, 'write');
    v_claims record;
    v_written record;
BEGIN
    -- Bounds on what a caller passes are checks, not ASSERTs (a session can turn those off).
    -- Posting a pending entry and reversing one have their own entry points, which build
    -- these fields from the journal; from a caller they would release holds or mark an entry
    -- reversed without the judgement and the outcome those entry points record.
    IF jsonb_typeof(p_items) IS DISTINCT FROM 'array'
       OR jsonb_array_length(p_items) NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'a call writes 1..1000 entries'
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    IF EXISTS (
        SELECT 1 FROM jsonb_array_elements(p_items) AS i (value)
        WHERE jsonb_typeof(i.value) <> 'object' OR i.value ?| ARRAY['posts', 'reverses']
    ) THEN
        RAISE EXCEPTION 'a batch is an array of entries, none of which posts or reverses another'
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    -- Claims are matched to their items by key: each new item has a key of its own, and an item
    -- the commands refused carries its error and nothing else.
    IF EXISTS (
        SELECT 1 FROM jsonb_array_elements(p_items) AS i (value)
        WHERE NOT i.value ? 'error'
        GROUP BY i.value ->> 'key'
        HAVING count(*) > 1 OR i.value ->> 'key' IS NULL
    ) OR EXISTS (
        SELECT 1 FROM jsonb_array_elements(p_items) AS i (value)
        WHERE i.value ? 'error' AND i.value - 'error' <> '{}'
    ) THEN
        RAISE EXCEPTION 'each entry of a batch has an idempotency key of its own'
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    IF EXISTS (
        SELECT 1 FROM jsonb_array_elements(p_items) AS i (value)
        WHERE NOT i.value ? 'error' AND NOT arus_lines_ok(i.value -> 'lines')
    ) THEN
        RAISE EXCEPTION 'an entry has 2..100 postings'
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    v_claims := arus_claim_batch(v_ledger, p_items);
    v_written := arus_write_entries(v_ledger, v_claims.items, coalesce(p_atomic, false),
                                    v_claims.results);
    RETURN json_build_object('results', array_to_json(v_written.results));
END $$;

CREATE OR REPLACE FUNCTION arus_reverse_entry(
    p_key_id text, p_secret_hash bytea, p_idempotency_key text, p_fingerprint text,
    p_entry_id uuid, p_description text, p_effective_date date
) RETURNS json LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_ledger uuid := arus_authorize(p_key_id, p_secret_hash, 'write');
    v_replay json;
    v_seq bigint;
    v_pending boolean;
    v_lines jsonb;
    v_written record;
BEGIN
    v_replay := arus_claim_idempotency_key(v_ledger, p_idempotency_key, p_fingerprint);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    SELECT ledger_seq, pending INTO v_seq, v_pending
    FROM entries WHERE ledger_id = v_ledger AND id = p_entry_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no entry %', p_entry_id USING ERRCODE = 'P0001', HINT = 'not_found';
    END IF;
    IF v_pending THEN
        RAISE EXCEPTION 'entry % is a pending entry: only posted entries are reversed (post or '
                        'void it instead)', p_entry_id
            USING ERRCODE = 'P0001', HINT = 'entry_not_posted';
    END IF;
    -- Reversals of one entry queue here, before any balance lock, so the loser of a race sees
    -- the winner's reversal (already_reversed) instead of the balances it moved. Always taken
    -- after the claim and only by reversals: it cannot join a lock cycle. The entry's own row,
    -- which no runtime role may lock (an advisory key any login could take first).
    PERFORM 1 FROM entries WHERE id = p_entry_id FOR NO KEY UPDATE;
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
    v_written := arus_write_entries(v_ledger, ARRAY[ROW(
            1, p_idempotency_key, p_fingerprint,
            coalesce(p_description, format('Reversal of entry %s', v_seq)), p_effective_date,
            '{}', p_entry_id, NULL, false, NULL, v_lines)::arus_item], true, ARRAY[NULL::json]);
    RETURN json_build_object('status', 201, 'body', v_written.body, 'replayed', false);
END $$;

CREATE OR REPLACE FUNCTION arus_create_account(
    p_key_id text, p_secret_hash bytea, p_idempotency_key text, p_fingerprint text,
    p_code text, p_name text, p_type text, p_currency text, p_allow_negative boolean,
    p_metadata jsonb
) RETURNS json LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_ledger uuid := arus_authorize(p_key_id, p_secret_hash, 'write');
    v_replay json;
    v_id uuid;
    v_body json;
BEGIN
    IF p_idempotency_key IS NOT NULL THEN
        v_replay := arus_claim_idempotency_key(v_ledger, p_idempotency_key, p_fingerprint);
        IF v_replay IS NOT NULL THEN
            RETURN v_replay;
        END IF;
    END IF;
    INSERT INTO accounts (ledger_id, code, name, type, currency, allow_negative, metadata)
    VALUES (v_ledger, p_code, p_name, p_type, p_currency, p_allow_negative,
            coalesce(p_metadata, '{}'::jsonb))
    ON CONFLICT (ledger_id, code) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'an account with code % already exists', p_code
            USING ERRCODE = 'P0001', HINT = 'duplicate_account_code';
    END IF;
    INSERT INTO balances (account_id, ledger_id, currency, normal_side, allow_negative)
    VALUES (v_id, v_ledger, p_currency,
            CASE WHEN p_type IN ('asset', 'expense') THEN 'debit' ELSE 'credit' END,
            p_allow_negative);
    v_body := arus_account_json(v_id);
    PERFORM arus_enqueue_event(v_ledger, 'account.created', NULL, clock_timestamp(), v_body);
    IF p_idempotency_key IS NOT NULL THEN
        UPDATE idempotency_keys SET status_code = 201, response = v_body
        WHERE ledger_id = v_ledger AND key = p_idempotency_key;
    END IF;
    RETURN json_build_object('status', 201, 'body', v_body, 'replayed', false);
END $$;
