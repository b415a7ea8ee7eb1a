-- The relay's and the close's writes, for the application's role, which may not write the
-- outbox or the close tables itself (migration 0005). Each is SECURITY DEFINER with a pinned
-- search_path, like the engine's public functions.

-- A batch of unpublished events, locked for the caller's transaction (FOR UPDATE SKIP LOCKED:
-- concurrent relays skip each other's rows); the envelope as stored, as text.
CREATE OR REPLACE FUNCTION arus_outbox_claim(p_limit int)
RETURNS TABLE (id bigint, event_id uuid, event_type text, ledger_id uuid, envelope_json text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT o.id, o.event_id, o.event_type, o.ledger_id, o.envelope::text
    FROM outbox_events o
    WHERE o.published_at IS NULL
    ORDER BY o.id
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
$$;

-- Marks events published once the broker confirmed them: only rows this transaction claimed
-- (row-locked by arus_outbox_claim, so their xmax is this transaction's id) and still
-- unpublished; nothing else of a row changes. An id the caller did not claim is ignored, so a
-- relay's login cannot mark events it never sent. Returns how many it marked.
CREATE OR REPLACE FUNCTION arus_outbox_published(p_ids bigint[]) RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH marked AS (
        UPDATE outbox_events SET published_at = clock_timestamp()
        WHERE id = ANY (p_ids) AND published_at IS NULL
          AND xmax = pg_current_xact_id_if_assigned()::xid
        RETURNING 1
    )
    SELECT count(*)::int FROM marked
$$;

-- Retention (opt-in; the default keeps everything): deletes idempotency claims and published
-- outbox rows older than the given days. A claim older than its window no longer replays: the
-- minimum keeps that window far beyond any client's retry horizon. Unpublished rows are never
-- deleted. Returns {"idempotency_keys": n, "outbox_events": n}.
CREATE OR REPLACE FUNCTION arus_prune(p_idempotency_days int, p_outbox_days int) RETURNS json
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    c_min_days constant int := 7;
    v_keys bigint := 0;
    v_events bigint := 0;
BEGIN
    IF p_idempotency_days < c_min_days OR p_outbox_days < c_min_days THEN
        RAISE EXCEPTION 'retention is at least % days', c_min_days
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    IF p_idempotency_days IS NOT NULL THEN
        DELETE FROM idempotency_keys
        WHERE created_at < clock_timestamp() - make_interval(days => p_idempotency_days)
          AND response IS NOT NULL;
        GET DIAGNOSTICS v_keys = ROW_COUNT;
    END IF;
    IF p_outbox_days IS NOT NULL THEN
        DELETE FROM outbox_events
        WHERE published_at < clock_timestamp() - make_interval(days => p_outbox_days);
        GET DIAGNOSTICS v_events = ROW_COUNT;
    END IF;
    RETURN json_build_object('idempotency_keys', v_keys, 'outbox_events', v_events);
END $$;
