-- Holds (SPEC §3.2): posting or voiding a pending entry, and the sweep of expired ones. A
-- pending entry's lines reserve funds as holds and add to the account's pending_debits or
-- pending_credits (posting.sql writes them); each pending entry has exactly one outcome.

-- Locks, after the ledger's close lock (shared: a close seals the outcomes resolved before it,
-- so none may be resolved while it runs) and in ascending account id (the engine's lock
-- order), the balance rows of the accounts that the given pending entries of a ledger hold
-- funds on. A post and a void take these locks before they claim an outcome, and the expiry
-- sweep takes the same locks (without waiting) too: a spend that judged a hold expired has
-- committed before a capture of that hold judges its expiry (so the capture answers
-- pending_expired, never insufficient_funds), and a sweep never waits for an outcome while
-- holding a balance lock.
CREATE OR REPLACE FUNCTION arus_lock_hold_accounts(p_ledger uuid, p_entries uuid[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM arus_close_lock(p_ledger, false);
    PERFORM 1 FROM balances
    WHERE account_id IN (SELECT account_id FROM pending_postings
                         WHERE entry_id = ANY (p_entries) AND ledger_id = p_ledger)
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
    v_written record;
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
    -- The item posts the pending entry: its lines release the holds (arus_write_entries
    -- deletes them when it applies the item).
    v_written := arus_write_entries(v_ledger, ARRAY[ROW(
            1, p_idempotency_key, p_fingerprint,
            coalesce(p_description, format('Posting of entry %s', v_seq)), p_effective_date,
            '{}', NULL, p_entry_id, false, NULL, v_lines)::arus_item], true, ARRAY[NULL::json]);
    RETURN json_build_object('status', 201, 'body', v_written.body, 'replayed', false);
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
-- an expired hold stopped counting at its instant. Returns how many entries it expired; an
-- entry whose accounts another transaction has locked waits for a later sweep.
CREATE OR REPLACE FUNCTION arus_expire_holds(p_limit int) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_due uuid[];
    v_locked uuid[];
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
    -- The sweep spans every ledger, so it never waits for a lock. A ledger being closed (its
    -- close lock held: a close seals the outcomes resolved before it) waits for a later sweep;
    v_due := ARRAY(SELECT d.entry_id FROM unnest(v_due) AS d (entry_id)
                   JOIN entries e ON e.id = d.entry_id
                   WHERE e.ledger_id IN (SELECT c.ledger_id FROM ledger_close_locks c
                                         WHERE c.ledger_id IN (SELECT x.ledger_id FROM entries x
                                                               WHERE x.id = ANY (v_due))
                                         ORDER BY c.ledger_id
                                         FOR SHARE SKIP LOCKED));
    -- nor for a balance row: a writer holding one (an open transaction of any tenant, however
    -- long) only defers the entries holding funds on that account to a later sweep. Their
    -- holds stopped counting at expiry all the same.
    v_locked := ARRAY(SELECT account_id FROM balances
                      WHERE account_id IN (SELECT account_id FROM pending_postings
                                           WHERE entry_id = ANY (v_due))
                      ORDER BY account_id
                      FOR UPDATE SKIP LOCKED);
    v_due := ARRAY(SELECT d.entry_id FROM unnest(v_due) AS d (entry_id)
                   WHERE NOT EXISTS (SELECT 1 FROM pending_postings p
                                     WHERE p.entry_id = d.entry_id
                                       AND p.account_id <> ALL (v_locked)));
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
