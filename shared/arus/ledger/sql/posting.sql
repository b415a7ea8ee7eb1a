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

-- The core: writes the entries of p_items in request order, each judged exactly like a single
-- entry on the balances the items before it left. p_items is a JSON array of
--   {key, fingerprint, description, effective_date, metadata, reverses, posts,
--    pending, expires_at, lines: [{account_id | account_code, direction, amount, currency?}]}
-- already shape-checked by the Python commands. p_claimed: the caller has claimed the keys.
--
-- Holds (SPEC §3.2): a pending item moves no balance; its lines reserve funds as holds and
-- add to the account's pending_debits or pending_credits. An item that `posts` a pending entry
-- moves the balances and releases that entry's holds. Overdraft is judged on the available
-- balance, `balance` minus the active holds on the side that lowers it, for every item; a hold
-- past its expires_at is not active from that instant, whether or not the sweep has run.
-- p_atomic: the first failing item raises (nothing is written); otherwise a failing item only
-- releases its claim. Returns {"results": [...]}, one result per item in request order.
CREATE OR REPLACE FUNCTION arus_write_entries(
    p_ledger uuid, p_items jsonb, p_atomic boolean, p_claimed boolean
) RETURNS json LANGUAGE plpgsql
-- Plan each statement once per connection: re-planning them on every call (PostgreSQL's
-- default for statements with parameters, while custom plans look cheaper) cost half the
-- call. Every statement's plan is driven by index lookups whatever the parameters' values.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    c_int64_max constant numeric := 9223372036854775807;
    c_int64_min constant numeric := -9223372036854775808;
    v_n constant int := jsonb_array_length(p_items);
    v_new boolean[];           -- per item: its key was claimed here (false: replay or conflict)
    v_results json[];          -- per item: its result
    v_written int[] := '{}';   -- items that passed, in request order
    v_released text[] := '{}'; -- keys of failed items, whose claims are given back
    -- Per resolved posting line, ordered by (item, position):
    v_item int[]; v_pos int[]; v_account uuid[]; v_code text[]; v_currency text[];
    v_want text[]; v_direction text[]; v_amount bigint[]; v_delta numeric[];
    v_start bigint[]; v_negative boolean[];
    v_resolved int[];          -- per item: how many of its lines name a known account
    v_lo int := 1;             -- where the next judged item's lines start in the arrays
    v_first_bad int;
    v_prefix int;              -- items 1..v_prefix passed the one-pass judgement
    v_hi int;
    v_lines int;
    v_fail_code text;
    v_fail_message text;
    v_missing int;
    v_mismatch record;
    v_unbalanced text;
    v_too_large text;
    v_overflow text;
    v_overdraft text;
    v_upd_ids uuid[];
    v_upd_balances bigint[];
    v_upd_counts int[];
    v_upd_pending_debits bigint[];
    v_upd_pending_credits bigint[];
    -- Per line, for holds: the item is pending; the item posts a pending entry (releases it).
    v_pending boolean[]; v_release boolean[];
    v_lower_start numeric[];   -- the account's active holds on the lowering side, at the start
    v_lower_delta numeric[];   -- what the line adds to them
    v_hold_start numeric[];    -- the account's pending total on the line's side, materialized
    v_hold_delta numeric[];    -- what the line adds to it
    v_expired_lower numeric[]; -- the account's expired, not yet swept holds, lowering side
    v_judged_at constant timestamptz := clock_timestamp();
    v_today date;
    v_min_date date;
    v_last_close date;
    v_entry_ids uuid[];
    v_postings json[];
    v_bodies json[];
    v_body_items int[];
    v_seq bigint;
    v_now timestamptz;
    v_replay record;
BEGIN
    -- Bounds on what a caller passes are checks, not ASSERTs (a session can turn those off).
    IF v_n IS NULL OR v_n NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'a call writes 1..1000 entries'
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;

    -- 1. Idempotency claims, in ascending key order.
    IF p_claimed THEN
        v_new := array_fill(true, ARRAY[v_n]);
        v_results := array_fill(NULL::json, ARRAY[v_n]);
    ELSE
        WITH claimed AS (
            INSERT INTO idempotency_keys (ledger_id, key, fingerprint)
            SELECT p_ledger, i.value ->> 'key', i.value ->> 'fingerprint'
            FROM jsonb_array_elements(p_items) AS i (value)
            WHERE NOT i.value ? 'error'
            ORDER BY i.value ->> 'key'
            ON CONFLICT (ledger_id, key) DO NOTHING
            RETURNING key
        )
        SELECT array_agg(c.key IS NOT NULL ORDER BY i.ord),
               array_agg(CASE WHEN i.value ? 'error' THEN json_build_object(
                   'status', (i.value -> 'error' ->> 'status')::int, 'error', json_build_object(
                       'code', i.value -> 'error' ->> 'code',
                       'message', i.value -> 'error' ->> 'message')) END ORDER BY i.ord)
        INTO v_new, v_results
        FROM jsonb_array_elements(p_items) WITH ORDINALITY AS i (value, ord)
        LEFT JOIN claimed c ON c.key = i.value ->> 'key';
        -- The keys we did not claim were committed by others: a new statement sees them.
        FOR v_replay IN
            SELECT i.ord::int AS item, k.fingerprint = i.value ->> 'fingerprint' AS same,
                   k.response
            FROM jsonb_array_elements(p_items) WITH ORDINALITY AS i (value, ord)
            JOIN idempotency_keys k ON k.ledger_id = p_ledger AND k.key = i.value ->> 'key'
            WHERE NOT v_new[i.ord] AND NOT i.value ? 'error'
        LOOP
            IF v_replay.same THEN
                ASSERT v_replay.response IS NOT NULL, 'a committed claim has its response';
                v_results[v_replay.item] := json_build_object(
                    'status', 200, 'entry', v_replay.response, 'replayed', true);
            ELSE
                v_results[v_replay.item] := json_build_object('status', 409, 'error',
                    json_build_object('code', 'idempotency_conflict', 'message',
                        'this Idempotency-Key was already used with a different request'));
            END IF;
        END LOOP;
    END IF;

    -- 2. Decode the new items' lines into typed arrays: no join here, so the next statement
    --    is planned on arrays whose length the planner knows (jsonb_array_elements claims 100
    --    rows a call, which made 5,000 lines out of one entry and a hash join over every
    --    balance row of the ledger).
    SELECT array_agg(i.ord::int ORDER BY i.ord, p.ord), array_agg(p.ord::int ORDER BY i.ord, p.ord),
           array_agg((p.value ->> 'account_id')::uuid ORDER BY i.ord, p.ord),
           array_agg(p.value ->> 'account_code' ORDER BY i.ord, p.ord),
           array_agg(p.value ->> 'currency' ORDER BY i.ord, p.ord),
           array_agg(p.value ->> 'direction' ORDER BY i.ord, p.ord),
           array_agg((p.value ->> 'amount')::bigint ORDER BY i.ord, p.ord),
           array_agg(coalesce((i.value ->> 'pending')::boolean, false) ORDER BY i.ord, p.ord),
           array_agg(i.value ->> 'posts' IS NOT NULL ORDER BY i.ord, p.ord),
           min((i.value ->> 'effective_date')::date)
    INTO v_item, v_pos, v_account, v_code, v_want, v_direction, v_amount, v_pending, v_release,
         v_min_date
    FROM jsonb_array_elements(p_items) WITH ORDINALITY AS i (value, ord),
         jsonb_array_elements(i.value -> 'lines') WITH ORDINALITY AS p (value, ord)
    WHERE v_new[i.ord];

    -- Closed days (SPEC §3.3): an entry dated on or before the ledger's last close is refused.
    -- Only a day that is over can be closed, so entries dated today or later skip the lookup;
    -- a back-dated call takes the ledger's close lock shared, and a close takes it exclusive:
    -- a close never runs between this check and this call's commit.
    v_today := (v_judged_at AT TIME ZONE 'UTC')::date;
    IF v_min_date < v_today THEN
        PERFORM arus_close_lock(p_ledger, false);
        SELECT max(close_date) INTO v_last_close FROM daily_closes WHERE ledger_id = p_ledger;
    END IF;

    -- 3. Resolve every line and lock its balance row, ascending account id, in one statement.
    --    A line naming no account of this ledger is simply absent from the result.
    SELECT array_agg(r.item ORDER BY r.item, r.pos), array_agg(r.pos ORDER BY r.item, r.pos),
           array_agg(r.account_id ORDER BY r.item, r.pos),
           array_agg(r.code ORDER BY r.item, r.pos),
           array_agg(r.currency ORDER BY r.item, r.pos),
           array_agg(r.want ORDER BY r.item, r.pos),
           array_agg(r.direction ORDER BY r.item, r.pos),
           array_agg(r.amount ORDER BY r.item, r.pos),
           -- What the line moves the posted balance by: nothing for a pending line.
           array_agg(CASE WHEN r.pending THEN 0
                          WHEN r.direction = r.normal_side THEN r.amount::numeric
                          ELSE -r.amount::numeric END ORDER BY r.item, r.pos),
           array_agg(r.balance ORDER BY r.item, r.pos),
           array_agg(r.allow_negative ORDER BY r.item, r.pos),
           array_agg(r.pending ORDER BY r.item, r.pos),
           array_agg(r.release ORDER BY r.item, r.pos),
           array_agg(CASE r.normal_side WHEN 'debit' THEN r.pending_credits ELSE r.pending_debits
                     END ORDER BY r.item, r.pos),
           array_agg(CASE WHEN r.direction = r.normal_side THEN 0
                          WHEN r.pending THEN r.amount::numeric
                          WHEN r.release THEN -r.amount::numeric ELSE 0 END
                     ORDER BY r.item, r.pos),
           array_agg(CASE r.direction WHEN 'debit' THEN r.pending_debits ELSE r.pending_credits
                     END ORDER BY r.item, r.pos),
           array_agg(CASE WHEN r.pending THEN r.amount::numeric
                          WHEN r.release THEN -r.amount::numeric ELSE 0 END
                     ORDER BY r.item, r.pos)
    INTO v_item, v_pos, v_account, v_code, v_currency, v_want, v_direction, v_amount, v_delta,
         v_start, v_negative, v_pending, v_release, v_lower_start, v_lower_delta,
         v_hold_start, v_hold_delta
    FROM (
        SELECT l.item, l.pos, b.account_id, a.code, a.currency, l.want, l.direction, l.amount,
               b.normal_side, b.balance, b.allow_negative, l.pending, l.release,
               b.pending_debits, b.pending_credits
        FROM unnest(v_item, v_pos, v_account, v_code, v_want, v_direction, v_amount, v_pending,
                    v_release)
             AS l (item, pos, account_id, account_code, want, direction, amount, pending,
                   release)
        -- One index lookup per line: by id, or by (ledger, code) for a line naming a code.
        JOIN accounts a ON a.ledger_id = p_ledger AND a.id = coalesce(l.account_id, (
            SELECT c.id FROM accounts c WHERE c.ledger_id = p_ledger AND c.code = l.account_code))
        JOIN balances b ON b.account_id = a.id
        ORDER BY b.account_id
        FOR UPDATE OF b
    ) r;

    -- Holds past their instant that the sweep has not tidied yet are not active. Read in a
    -- statement of its own, after the balance rows are locked: the lock re-read those rows at
    -- their latest version, and this statement's snapshot sees every sweep committed by then
    -- (one snapshot for both, or a sweep's release would be subtracted twice); while the locks
    -- are held, no sweep can release these accounts' holds. The holds this call posts are
    -- released by it, not expired.
    SELECT coalesce(array_agg(coalesce(x.expired, 0) ORDER BY l.ord), '{}'),
           coalesce(array_agg(l.lower - coalesce(x.expired, 0) ORDER BY l.ord), '{}')
    INTO v_expired_lower, v_lower_start
    FROM unnest(v_account, v_lower_start) WITH ORDINALITY AS l (account_id, lower, ord)
    LEFT JOIN LATERAL (
        SELECT sum(h.amount) AS expired
        FROM holds h JOIN balances b ON b.account_id = h.account_id
        WHERE h.account_id = l.account_id AND h.expires_at <= v_judged_at
          AND h.direction <> b.normal_side
          AND h.entry_id <> ALL (coalesce(ARRAY(
                  SELECT (i.value ->> 'posts')::uuid FROM jsonb_array_elements(p_items) AS i (value)
                  WHERE i.value ->> 'posts' IS NOT NULL), '{}'))
    ) x ON true;

    SELECT array_agg(coalesce(c.n, 0) ORDER BY g.item) INTO v_resolved
    FROM generate_series(1, v_n) AS g (item)
    LEFT JOIN (SELECT x.item, count(*)::int AS n FROM unnest(v_item) AS x (item) GROUP BY 1) c
           ON c.item = g.item;

    -- 4. The clean prefix in one pass: judge every new item at once on running balances that
    --    assume the items before it were written. Up to the first item that fails (or might:
    --    this pass may only err towards failing), that assumption holds, so those items are
    --    written with one balance update. From that item on, each is judged alone in step 5,
    --    exactly as before. The common call, where nothing fails, never reaches step 5.
    WITH l AS (
        SELECT * FROM unnest(v_item, v_pos, v_account, v_currency, v_want, v_direction,
                             v_amount, v_delta, v_start, v_negative, v_lower_start,
                             v_lower_delta, v_hold_start, v_hold_delta)
            AS l (item, pos, account_id, currency, want, direction, amount, delta, start,
                  negative, lower_start, lower_delta, hold_start, hold_delta)
    ), running AS (
        SELECT l.item, l.currency, l.want, l.negative,
               l.start + sum(l.delta) OVER w AS after,
               l.lower_start + sum(l.lower_delta) OVER w AS lower_after,
               l.hold_start + sum(l.hold_delta) OVER (PARTITION BY l.account_id, l.direction
                                                      ORDER BY l.item, l.pos) AS hold_after,
               row_number() OVER (PARTITION BY l.account_id, l.item ORDER BY l.pos DESC) AS rn
        FROM l
        WINDOW w AS (PARTITION BY l.account_id ORDER BY l.item, l.pos)
    )
    SELECT min(bad.item) INTO v_first_bad
    FROM (
        SELECT item FROM running
        WHERE (want IS NOT NULL AND want <> currency)
           OR after NOT BETWEEN c_int64_min AND c_int64_max
           OR hold_after > c_int64_max
           OR (rn = 1 AND NOT negative AND after - lower_after < 0)
        UNION ALL
        -- Dated into a closed day, or a hold that would expire before it is written.
        SELECT g.item FROM generate_series(1, v_n) AS g (item)
        WHERE v_new[g.item]
          AND ((p_items -> (g.item - 1) ->> 'effective_date')::date <= v_last_close
               OR (p_items -> (g.item - 1) ->> 'expires_at')::timestamptz <= v_judged_at)
        UNION ALL
        SELECT item FROM l GROUP BY item, currency
        HAVING coalesce(sum(amount) FILTER (WHERE direction = 'debit'), 0)
                   <> coalesce(sum(amount) FILTER (WHERE direction = 'credit'), 0)
            OR coalesce(sum(amount) FILTER (WHERE direction = 'debit'), 0) > c_int64_max * 2
        UNION ALL
        -- A line naming no account of this ledger, or (atomic) a refused item before it.
        SELECT g.item FROM generate_series(1, v_n) AS g (item)
        WHERE CASE WHEN v_new[g.item]
                   THEN v_resolved[g.item]
                        < jsonb_array_length(p_items -> (g.item - 1) -> 'lines')
                   ELSE p_atomic AND v_results[g.item] -> 'error' IS NOT NULL END
    ) bad;
    v_prefix := coalesce(v_first_bad, v_n + 1) - 1;

    IF v_prefix > 0 THEN
        UPDATE balances b
        SET balance = u.after, posting_count = b.posting_count + u.n,
            pending_debits = b.pending_debits + u.pending_debits,
            pending_credits = b.pending_credits + u.pending_credits,
            updated_at = clock_timestamp()
        FROM (
            SELECT l.account_id, (min(l.start) + sum(l.delta))::bigint AS after,
                   (count(*) FILTER (WHERE NOT l.pending))::int AS n,
                   coalesce(sum(l.hold_delta) FILTER (WHERE l.direction = 'debit'), 0)::bigint
                       AS pending_debits,
                   coalesce(sum(l.hold_delta) FILTER (WHERE l.direction = 'credit'), 0)::bigint
                       AS pending_credits
            FROM unnest(v_item, v_account, v_delta, v_start, v_pending, v_direction, v_hold_delta)
                 AS l (item, account_id, delta, start, pending, direction, hold_delta)
            WHERE l.item <= v_prefix
            GROUP BY l.account_id
        ) u
        WHERE b.account_id = u.account_id;
        SELECT coalesce(array_agg(g.item ORDER BY g.item), '{}'),
               1 + coalesce(sum(v_resolved[g.item]), 0)
        INTO v_written, v_lo
        FROM generate_series(1, v_prefix) AS g (item)
        WHERE v_new[g.item];
    END IF;

    -- 5. From the first failing item on, judge each item alone in request order against the
    --    balances as they now stand.
    FOR i IN v_prefix + 1 .. v_n LOOP
        IF NOT v_new[i] THEN
            -- A replay stands; a conflict or an item the commands refused fails an atomic
            -- call here, in request order.
            IF p_atomic AND v_results[i] -> 'error' IS NOT NULL THEN
                RAISE EXCEPTION '%', v_results[i] -> 'error' ->> 'message'
                    USING ERRCODE = 'P0001', HINT = v_results[i] -> 'error' ->> 'code',
                          DETAIL = format('index=%s', i - 1);
            END IF;
            CONTINUE;
        END IF;
        v_fail_code := NULL;
        v_lines := jsonb_array_length(p_items -> (i - 1) -> 'lines');
        v_hi := v_lo + v_resolved[i] - 1;
        IF v_lines IS NULL OR v_lines NOT BETWEEN 2 AND 100 THEN
            RAISE EXCEPTION 'an entry has 2..100 postings'
                USING ERRCODE = 'P0001', HINT = 'validation_error';
        END IF;

        -- The first line (by position) naming an unknown account or the wrong currency.
        SELECT min(g.pos) INTO v_missing
        FROM generate_series(1, v_lines) AS g (pos)
        WHERE g.pos <> ALL (coalesce(v_pos[v_lo:v_hi], '{}'));
        SELECT l.pos, l.code, l.currency, l.want INTO v_mismatch
        FROM unnest(v_pos[v_lo:v_hi], v_code[v_lo:v_hi], v_currency[v_lo:v_hi],
                    v_want[v_lo:v_hi]) AS l (pos, code, currency, want)
        WHERE l.want IS NOT NULL AND l.want <> l.currency
        ORDER BY l.pos LIMIT 1;
        IF (p_items -> (i - 1) ->> 'effective_date')::date <= v_last_close THEN
            v_fail_code := 'period_closed';
            v_fail_message := format(
                'effective_date %s is in a closed period: the ledger is closed through %s',
                p_items -> (i - 1) ->> 'effective_date', v_last_close);
        ELSIF (p_items -> (i - 1) ->> 'expires_at')::timestamptz <= v_judged_at THEN
            v_fail_code := 'validation_error';
            v_fail_message := 'expires_at must be in the future';
        ELSIF v_missing IS NOT NULL
              AND (v_mismatch.pos IS NULL OR v_missing < v_mismatch.pos) THEN
            v_fail_code := 'validation_error';
            v_fail_message := format('postings[%s].account: no such account %s', v_missing - 1,
                coalesce(p_items -> (i - 1) -> 'lines' -> (v_missing - 1) ->> 'account_id',
                         p_items -> (i - 1) -> 'lines' -> (v_missing - 1) ->> 'account_code'));
        ELSIF v_mismatch.pos IS NOT NULL THEN
            v_fail_code := 'currency_mismatch';
            v_fail_message := format('postings[%s].currency is %s but account %s is in %s',
                v_mismatch.pos - 1, v_mismatch.want, v_mismatch.code, v_mismatch.currency);
        ELSE
            -- Balance per currency, the int64 range of totals and of every balance_after, and
            -- overdrafts judged on each account's final balance: one statement.
            WITH l AS (
                SELECT * FROM unnest(v_pos[v_lo:v_hi], v_account[v_lo:v_hi],
                                     v_code[v_lo:v_hi], v_currency[v_lo:v_hi],
                                     v_direction[v_lo:v_hi], v_amount[v_lo:v_hi],
                                     v_delta[v_lo:v_hi], v_negative[v_lo:v_hi],
                                     v_pending[v_lo:v_hi], v_lower_delta[v_lo:v_hi],
                                     v_hold_delta[v_lo:v_hi], v_expired_lower[v_lo:v_hi])
                    AS l (pos, account_id, code, currency, direction, amount, delta, negative,
                          pending, lower_delta, hold_delta, expired_lower)
            ), totals AS (
                SELECT currency,
                       coalesce(sum(amount) FILTER (WHERE direction = 'debit'), 0) AS debits,
                       coalesce(sum(amount) FILTER (WHERE direction = 'credit'), 0) AS credits
                FROM l GROUP BY currency
            ), running AS (
                SELECT l.pos, l.account_id, l.code, l.negative,
                       b.balance + sum(l.delta) OVER w AS after,
                       CASE b.normal_side WHEN 'debit' THEN b.pending_credits
                                          ELSE b.pending_debits END
                           - l.expired_lower + sum(l.lower_delta) OVER w AS lower_after,
                       CASE l.direction WHEN 'debit' THEN b.pending_debits
                                        ELSE b.pending_credits END
                           + sum(l.hold_delta) OVER (PARTITION BY l.account_id, l.direction
                                                     ORDER BY l.pos) AS hold_after,
                       count(*) FILTER (WHERE NOT l.pending)
                           OVER (PARTITION BY l.account_id) AS n,
                       coalesce(sum(l.hold_delta) FILTER (WHERE l.direction = 'debit')
                           OVER (PARTITION BY l.account_id), 0) AS pending_debits,
                       coalesce(sum(l.hold_delta) FILTER (WHERE l.direction = 'credit')
                           OVER (PARTITION BY l.account_id), 0) AS pending_credits,
                       row_number() OVER (PARTITION BY l.account_id ORDER BY l.pos DESC) AS rn
                FROM l JOIN balances b ON b.account_id = l.account_id
                WINDOW w AS (PARTITION BY l.account_id ORDER BY l.pos)
            )
            SELECT
                (SELECT string_agg(format('%s (debits %s, credits %s)', currency, debits,
                                          credits), '; ' ORDER BY currency)
                 FROM totals WHERE debits <> credits),
                (SELECT string_agg(currency, ', ' ORDER BY currency) FROM totals
                 WHERE debits > c_int64_max * 2),
                (SELECT code FROM running
                 WHERE after NOT BETWEEN c_int64_min AND c_int64_max OR hold_after > c_int64_max
                 ORDER BY pos LIMIT 1),
                (SELECT format('account %s has insufficient funds: the entry would take its '
                               'available balance to %s', code, after - lower_after)
                 FROM running WHERE rn = 1 AND NOT negative AND after - lower_after < 0
                 ORDER BY account_id LIMIT 1),
                (SELECT array_agg(account_id ORDER BY account_id) FROM running WHERE rn = 1),
                (SELECT array_agg(CASE WHEN after BETWEEN c_int64_min AND c_int64_max
                                       THEN after::bigint END ORDER BY account_id)
                 FROM running WHERE rn = 1),
                (SELECT array_agg(n::int ORDER BY account_id) FROM running WHERE rn = 1),
                (SELECT array_agg(CASE WHEN pending_debits BETWEEN c_int64_min AND c_int64_max
                                       THEN pending_debits::bigint END ORDER BY account_id)
                 FROM running WHERE rn = 1),
                (SELECT array_agg(CASE WHEN pending_credits BETWEEN c_int64_min AND c_int64_max
                                       THEN pending_credits::bigint END ORDER BY account_id)
                 FROM running WHERE rn = 1)
            INTO v_unbalanced, v_too_large, v_overflow, v_overdraft, v_upd_ids,
                 v_upd_balances, v_upd_counts, v_upd_pending_debits, v_upd_pending_credits;
            IF v_unbalanced IS NOT NULL THEN
                v_fail_code := 'unbalanced_entry';
                v_fail_message := 'debits and credits differ: ' || v_unbalanced;
            ELSIF v_too_large IS NOT NULL THEN
                v_fail_code := 'validation_error';
                v_fail_message := format('the entry''s total in %s exceeds the int64 range',
                                         v_too_large);
            ELSIF v_overflow IS NOT NULL THEN
                v_fail_code := 'validation_error';
                v_fail_message := format('the balance of account %s would leave the int64 range',
                                         v_overflow);
            ELSIF v_overdraft IS NOT NULL THEN
                v_fail_code := 'insufficient_funds';
                v_fail_message := v_overdraft;
            END IF;
        END IF;

        IF v_fail_code IS NOT NULL THEN
            IF p_atomic THEN
                RAISE EXCEPTION '%', v_fail_message
                    USING ERRCODE = 'P0001', HINT = v_fail_code,
                          DETAIL = format('index=%s', i - 1) || CASE v_fail_code
                              WHEN 'period_closed' THEN
                                  ' first_open_date=' || to_char(v_last_close + 1, 'YYYY-MM-DD')
                              ELSE '' END;
            END IF;
            v_results[i] := json_build_object('status', 422, 'error',
                CASE v_fail_code
                    WHEN 'period_closed' THEN json_build_object(
                        'code', v_fail_code, 'message', v_fail_message,
                        'first_open_date', to_char(v_last_close + 1, 'YYYY-MM-DD'))
                    ELSE json_build_object('code', v_fail_code, 'message', v_fail_message) END);
            v_released := v_released || (p_items -> (i - 1) ->> 'key');
        ELSE
            UPDATE balances b
            SET balance = u.balance, posting_count = b.posting_count + u.n,
                pending_debits = b.pending_debits + u.pending_debits,
                pending_credits = b.pending_credits + u.pending_credits,
                updated_at = clock_timestamp()
            FROM unnest(v_upd_ids, v_upd_balances, v_upd_counts, v_upd_pending_debits,
                        v_upd_pending_credits)
                 AS u (account_id, balance, n, pending_debits, pending_credits)
            WHERE b.account_id = u.account_id;
            v_written := v_written || i;
        END IF;
        v_lo := v_hi + 1;
    END LOOP;

    IF cardinality(v_released) > 0 THEN
        DELETE FROM idempotency_keys WHERE ledger_id = p_ledger AND key = ANY (v_released);
    END IF;
    IF cardinality(v_written) = 0 THEN
        RETURN json_build_object('results', array_to_json(v_results));
    END IF;

    -- 6. Render what does not depend on ledger_seq before taking it.
    SELECT array_agg(gen_random_uuid() ORDER BY r.rank), array_agg(r.postings ORDER BY r.rank)
    INTO v_entry_ids, v_postings
    FROM (
        SELECT w.rank, json_agg(json_build_object(
                   'account_id', l.account_id, 'account_code', l.code,
                   'direction', l.direction, 'amount', l.amount, 'currency', l.currency)
                   ORDER BY l.pos) AS postings
        FROM unnest(v_item, v_pos, v_account, v_code, v_direction, v_amount, v_currency)
             AS l (item, pos, account_id, code, direction, amount, currency)
        JOIN unnest(v_written) WITH ORDINALITY AS w (item, rank) ON w.item = l.item
        GROUP BY w.rank
    ) r;

    -- 7. The ledger's sequence step: one per call, the ledger row held from here to commit.
    UPDATE ledgers SET last_ledger_seq = last_ledger_seq + cardinality(v_written)
    WHERE id = p_ledger
    RETURNING last_ledger_seq - cardinality(v_written) INTO STRICT v_seq;
    v_now := clock_timestamp();

    INSERT INTO entries (id, ledger_id, ledger_seq, description, effective_date, metadata,
                         reverses, posts, pending, expires_at, idempotency_key, created_at)
    SELECT w.id, p_ledger, v_seq + w.rank, it ->> 'description',
           (it ->> 'effective_date')::date, coalesce(it -> 'metadata', '{}'::jsonb),
           (it ->> 'reverses')::uuid, (it ->> 'posts')::uuid,
           coalesce((it ->> 'pending')::boolean, false), (it ->> 'expires_at')::timestamptz,
           it ->> 'key', v_now
    FROM unnest(v_written, v_entry_ids) WITH ORDINALITY AS w (item, id, rank),
         LATERAL (SELECT p_items -> (w.item - 1) AS it) x;

    -- Posted lines become postings, with the balance right after each (pending lines move no
    -- balance, so the running sum over every line is the posted one); pending lines become
    -- pending postings and holds.
    WITH lines AS (
        SELECT v_entry_ids[w.rank] AS entry_id, l.account_id, l.pos, l.direction, l.amount,
               l.currency, l.pending,
               (l.start + sum(l.delta) OVER (PARTITION BY l.account_id
                                             ORDER BY l.item, l.pos))::bigint AS balance_after
        FROM unnest(v_item, v_pos, v_account, v_direction, v_amount, v_currency, v_delta,
                    v_start, v_pending)
             AS l (item, pos, account_id, direction, amount, currency, delta, start, pending)
        JOIN unnest(v_written) WITH ORDINALITY AS w (item, rank) ON w.item = l.item
    ), posted AS (
        INSERT INTO postings (entry_id, ledger_id, account_id, position, direction, amount,
                              currency, balance_after, created_at)
        SELECT entry_id, p_ledger, account_id, pos, direction, amount, currency, balance_after,
               v_now
        FROM lines WHERE NOT pending
    ), reserved AS (
        INSERT INTO pending_postings (entry_id, ledger_id, account_id, position, direction,
                                      amount, currency)
        SELECT entry_id, p_ledger, account_id, pos, direction, amount, currency
        FROM lines WHERE pending
        RETURNING entry_id, position, account_id, direction, amount
    )
    INSERT INTO holds (entry_id, position, ledger_id, account_id, direction, amount, expires_at)
    SELECT r.entry_id, r.position, p_ledger, r.account_id, r.direction, r.amount,
           (p_items -> (w.item - 1) ->> 'expires_at')::timestamptz
    FROM reserved r
    JOIN unnest(v_written, v_entry_ids) AS w (item, id) ON w.id = r.entry_id;

    WITH bodies AS (
        SELECT w.item, v_seq + w.rank AS seq, it ->> 'key' AS key,
               CASE WHEN (it ->> 'pending')::boolean THEN 'entry.pending'
                    ELSE 'entry.committed' END AS event_type,
               json_build_object(
                   'id', v_entry_ids[w.rank], 'ledger_seq', v_seq + w.rank,
                   'status', CASE WHEN (it ->> 'pending')::boolean THEN 'pending'
                                  ELSE 'posted' END,
                   'description', it ->> 'description',
                   'effective_date', it ->> 'effective_date',
                   'metadata', coalesce(it -> 'metadata', '{}'::jsonb),
                   'postings', v_postings[w.rank], 'reverses', it ->> 'reverses',
                   'reversed_by', NULL, 'posts', it ->> 'posts', 'posted_by', NULL,
                   'expires_at', arus_timestamp((it ->> 'expires_at')::timestamptz),
                   'created_at', arus_timestamp(v_now)) AS body
        FROM unnest(v_written) WITH ORDINALITY AS w (item, rank),
             LATERAL (SELECT p_items -> (w.item - 1) AS it) x
    ), events AS (
        INSERT INTO outbox_events (event_id, ledger_id, event_type, ledger_seq, occurred_at,
                                   envelope)
        SELECT e.event_id, p_ledger, b.event_type, b.seq, v_now,
               json_build_object(
                   'event_id', e.event_id, 'event_type', b.event_type,
                   'ledger_id', p_ledger, 'ledger_seq', b.seq,
                   'occurred_at', arus_timestamp(v_now), 'data', b.body)
        FROM bodies b CROSS JOIN LATERAL (SELECT gen_random_uuid() AS event_id, b.seq) e
        ORDER BY b.seq
    ), stored AS (
        UPDATE idempotency_keys k SET status_code = 201, response = b.body
        FROM bodies b WHERE k.ledger_id = p_ledger AND k.key = b.key
    )
    SELECT array_agg(b.item ORDER BY b.item), array_agg(b.body ORDER BY b.item)
    INTO v_body_items, v_bodies
    FROM bodies b;

    FOR k IN 1 .. cardinality(v_body_items) LOOP
        v_results[v_body_items[k]] := json_build_object('status', 201, 'entry', v_bodies[k]);
    END LOOP;
    RETURN json_build_object('results', array_to_json(v_results));
END $$;

-- POST /v1/entries: one entry. Returns {"status", "body", "replayed"}.
CREATE OR REPLACE FUNCTION arus_post_entry(
    p_key_id text, p_secret_hash bytea, p_idempotency_key text, p_fingerprint text,
    p_description text, p_effective_date date, p_metadata jsonb, p_lines jsonb,
    p_pending boolean, p_expires_at timestamptz
) RETURNS json LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_result json;
BEGIN
    v_result := arus_write_entries(
        arus_authorize(p_key_id, p_secret_hash, 'write'),
        jsonb_build_array(jsonb_build_object(
            'key', p_idempotency_key, 'fingerprint', p_fingerprint,
            'description', p_description, 'effective_date', p_effective_date,
            'metadata', coalesce(p_metadata, '{}'::jsonb), 'lines', p_lines,
            'pending', p_pending, 'expires_at', p_expires_at)),
        true, false) -> 'results' -> 0;
    RETURN json_build_object('status', (v_result ->> 'status')::int,
                             'body', v_result -> 'entry',
                             'replayed', coalesce((v_result ->> 'replayed')::boolean, false));
END $$;

-- POST /v1/entries/batch: items as arus_write_entries takes them.
CREATE OR REPLACE FUNCTION arus_post_batch(
    p_key_id text, p_secret_hash bytea, p_items jsonb, p_atomic boolean
) RETURNS json LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_ledger constant uuid := arus_authorize(p_key_id, p_secret_hash, 'write');
BEGIN
    -- Posting a pending entry and reversing one have their own entry points, which build
    -- these fields from the journal; from a caller they would release holds or mark an entry
    -- reversed without the judgement and the outcome those entry points record.
    IF jsonb_typeof(p_items) IS DISTINCT FROM 'array' OR EXISTS (
        SELECT 1 FROM jsonb_array_elements(p_items) AS i (value)
        WHERE jsonb_typeof(i.value) <> 'object' OR i.value ?| ARRAY['posts', 'reverses']
    ) THEN
        RAISE EXCEPTION 'a batch is an array of entries, none of which posts or reverses another'
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    RETURN arus_write_entries(v_ledger, p_items, coalesce(p_atomic, false), false);
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
    v_result json;
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
    v_result := arus_write_entries(v_ledger, jsonb_build_array(jsonb_build_object(
            'key', p_idempotency_key, 'fingerprint', p_fingerprint,
            'description', coalesce(p_description, format('Reversal of entry %s', v_seq)),
            'effective_date', p_effective_date, 'metadata', '{}'::jsonb,
            'reverses', p_entry_id, 'lines', v_lines)),
        true, true) -> 'results' -> 0;
    RETURN json_build_object('status', (v_result ->> 'status')::int,
                             'body', v_result -> 'entry', 'replayed', false);
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

-- Locks, in ascending account id (the engine's lock order), the balance rows of the accounts
-- that the given pending entries hold funds on. A post, a void and the expiry sweep take these
-- locks before they claim an outcome: a spend that judged a hold expired has committed before
-- a capture of that hold judges its expiry (so the capture answers pending_expired, never
-- insufficient_funds), and a sweep never waits for an outcome while holding a balance lock.
CREATE OR REPLACE FUNCTION arus_lock_hold_accounts(p_ledger uuid, p_entries uuid[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM balances
    WHERE account_id IN (SELECT account_id FROM pending_postings
                         WHERE entry_id = ANY (p_entries)
                           AND (p_ledger IS NULL OR ledger_id = p_ledger))
    ORDER BY account_id
    FOR UPDATE;
END $$;

-- A pending entry's outcome, claimed exactly once: the primary key of pending_outcomes decides
-- between a post, a void and the expiry sweep racing for the same entry (the loser waits on
-- the winner's row, then finds it). Raises what a post or void of this entry must answer
-- when it cannot have it: not_found, entry_not_pending or pending_expired.
CREATE OR REPLACE FUNCTION arus_claim_outcome(p_ledger uuid, p_entry_id uuid, p_outcome text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_entry record;
    v_outcome text;
BEGIN
    SELECT ledger_seq, pending, expires_at INTO v_entry
    FROM entries WHERE ledger_id = p_ledger AND id = p_entry_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no entry %', p_entry_id USING ERRCODE = 'P0001', HINT = 'not_found';
    END IF;
    IF NOT v_entry.pending THEN
        RAISE EXCEPTION 'entry % is not pending: it is a posted entry', p_entry_id
            USING ERRCODE = 'P0001', HINT = 'entry_not_pending';
    END IF;
    IF v_entry.expires_at <= clock_timestamp() THEN
        v_outcome := 'expired';
    ELSE
        INSERT INTO pending_outcomes (entry_id, ledger_id, outcome)
        VALUES (p_entry_id, p_ledger, p_outcome)
        ON CONFLICT (entry_id) DO NOTHING;
        IF FOUND THEN
            RETURN v_entry.ledger_seq;
        END IF;
        -- A new statement sees the outcome we waited for.
        SELECT outcome INTO STRICT v_outcome FROM pending_outcomes WHERE entry_id = p_entry_id;
    END IF;
    IF v_outcome = 'expired' THEN
        RAISE EXCEPTION 'entry % expired at %', p_entry_id, arus_timestamp(v_entry.expires_at)
            USING ERRCODE = 'P0001', HINT = 'pending_expired';
    END IF;
    RAISE EXCEPTION 'entry % is not pending: it is %', p_entry_id, v_outcome
        USING ERRCODE = 'P0001', HINT = 'entry_not_pending';
END $$;

-- Gives back the holds of resolved pending entries: their accounts' rows locked in ascending
-- account id (the engine's lock order), pending totals lowered, the holds deleted.
CREATE OR REPLACE FUNCTION arus_release_holds(p_entries uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM balances
    WHERE account_id IN (SELECT account_id FROM holds WHERE entry_id = ANY (p_entries))
    ORDER BY account_id
    FOR UPDATE;
    UPDATE balances b
    SET pending_debits = b.pending_debits - h.debits,
        pending_credits = b.pending_credits - h.credits,
        updated_at = clock_timestamp()
    FROM (
        SELECT account_id,
               coalesce(sum(amount) FILTER (WHERE direction = 'debit'), 0) AS debits,
               coalesce(sum(amount) FILTER (WHERE direction = 'credit'), 0) AS credits
        FROM holds WHERE entry_id = ANY (p_entries) GROUP BY account_id
    ) h
    WHERE b.account_id = h.account_id;
    DELETE FROM holds WHERE entry_id = ANY (p_entries);
END $$;

-- POST /v1/entries/{id}/post: a new posted entry with the pending entry's postings and
-- `posts: <id>`; it moves the balances and releases the holds, so it cannot fail for funds.
CREATE OR REPLACE FUNCTION arus_post_pending(
    p_key_id text, p_secret_hash bytea, p_idempotency_key text, p_fingerprint text,
    p_entry_id uuid, p_description text, p_effective_date date
) RETURNS json LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_ledger uuid := arus_authorize(p_key_id, p_secret_hash, 'write');
    v_replay json;
    v_seq bigint;
    v_lines jsonb;
    v_result json;
BEGIN
    v_replay := arus_claim_idempotency_key(v_ledger, p_idempotency_key, p_fingerprint);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    PERFORM arus_lock_hold_accounts(v_ledger, ARRAY[p_entry_id]);
    v_seq := arus_claim_outcome(v_ledger, p_entry_id, 'posted');
    SELECT jsonb_agg(jsonb_build_object('account_id', account_id, 'direction', direction,
                                        'amount', amount) ORDER BY position)
    INTO v_lines
    FROM pending_postings WHERE entry_id = p_entry_id;
    v_result := arus_write_entries(v_ledger, jsonb_build_array(jsonb_build_object(
            'key', p_idempotency_key, 'fingerprint', p_fingerprint,
            'description', coalesce(p_description, format('Posting of entry %s', v_seq)),
            'effective_date', p_effective_date, 'metadata', '{}'::jsonb,
            'posts', p_entry_id, 'lines', v_lines)),
        true, true) -> 'results' -> 0;
    DELETE FROM holds WHERE entry_id = p_entry_id;
    RETURN json_build_object('status', (v_result ->> 'status')::int,
                             'body', v_result -> 'entry', 'replayed', false);
END $$;

-- POST /v1/entries/{id}/void: the pending entry, now voided; its holds are released.
CREATE OR REPLACE FUNCTION arus_void_pending(
    p_key_id text, p_secret_hash bytea, p_idempotency_key text, p_fingerprint text,
    p_entry_id uuid
) RETURNS json LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_ledger uuid := arus_authorize(p_key_id, p_secret_hash, 'write');
    v_replay json;
    v_seq bigint;
    v_body json;
BEGIN
    v_replay := arus_claim_idempotency_key(v_ledger, p_idempotency_key, p_fingerprint);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    PERFORM arus_lock_hold_accounts(v_ledger, ARRAY[p_entry_id]);
    v_seq := arus_claim_outcome(v_ledger, p_entry_id, 'voided');
    PERFORM arus_release_holds(ARRAY[p_entry_id]);
    v_body := arus_entry_json(p_entry_id);
    PERFORM arus_enqueue_event(v_ledger, 'entry.voided', v_seq, clock_timestamp(), v_body);
    UPDATE idempotency_keys SET status_code = 200, response = v_body
    WHERE ledger_id = v_ledger AND key = p_idempotency_key;
    RETURN json_build_object('status', 200, 'body', v_body, 'replayed', false);
END $$;

-- The sweep: records the outcome of up to p_limit pending entries past their expires_at,
-- releases their holds and emits `entry.voided` for each (status "expired"). Tidying only:
-- an expired hold stopped counting at its instant. Returns how many entries it expired.
CREATE OR REPLACE FUNCTION arus_expire_holds(p_limit int) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_due uuid[];
    v_expired uuid[];
    v_event record;
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'a sweep expires 1..10000 entries'
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    PERFORM arus_require_read_committed();
    v_due := ARRAY(SELECT DISTINCT entry_id FROM holds WHERE expires_at <= clock_timestamp()
                   ORDER BY entry_id LIMIT p_limit);
    PERFORM arus_lock_hold_accounts(NULL, v_due);
    WITH claimed AS (
        INSERT INTO pending_outcomes (entry_id, ledger_id, outcome)
        SELECT id, ledger_id, 'expired' FROM entries WHERE id = ANY (v_due) ORDER BY id
        ON CONFLICT (entry_id) DO NOTHING
        RETURNING entry_id
    )
    SELECT coalesce(array_agg(entry_id ORDER BY entry_id), '{}') INTO v_expired FROM claimed;
    IF cardinality(v_expired) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM arus_release_holds(v_expired);
    FOR v_event IN
        SELECT e.ledger_id, e.ledger_seq, arus_entry_json(e.id) AS body
        FROM entries e WHERE e.id = ANY (v_expired) ORDER BY e.ledger_id, e.ledger_seq
    LOOP
        PERFORM arus_enqueue_event(v_event.ledger_id, 'entry.voided', v_event.ledger_seq,
                                   clock_timestamp(), v_event.body);
    END LOOP;
    RETURN cardinality(v_expired);
END $$;
